"""The one way to start a ``qactuar`` process, and to stop it with everything it started.

``start_qactuar(*args, log_path=...)`` runs ``python -m qactuar`` in
tests/apps (PYTHONPATH: tests/apps, then the repository) in a session and
process group of its own. By default the port is *held*: the test binds and
listens on 127.0.0.1:0 itself, passes the socket with ``--fd N`` and closes
its copy, so no other process can take the port between a probe and the
server's bind. ``listen="own"`` (chosen by itself when the arguments name an
address or ``--reuse-port``) lets qactuar bind: the arguments' address, or
``--host 127.0.0.1 --port 0`` and the port read from its ``Listening on``
line.

``stop_process`` sends SIGTERM to the PID, waits, SIGKILLs after a bound
(and then fails the test: a server that does not stop is a bug), and sweeps
the process group: fork children and prefork workers never outlive a test.
What the sweep had to kill is reported as a ``LeftoverProcessWarning``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

from .waiting import wait_until

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
APPS = os.path.join(TESTS, "apps")

#: How long a stop may take before the main process is killed and the test fails.
STOP_TIMEOUT = 15.0
#: How long start-up may take (imports, a lifespan, forking workers) on a loaded machine.
START_TIMEOUT = 20.0

#: Arguments that say where qactuar listens: with them, qactuar binds (listen="own").
ADDRESS_ARGS = ("--host", "--port", "--bind", "--uds", "--fd")
#: Arguments with which qactuar must bind itself: an address, or REUSE_PORT's lanes.
OWN_BINDING_ARGS = (*ADDRESS_ARGS, "--reuse-port")


class LeftoverProcessWarning(UserWarning):
    """A process of a stopped server's group was still alive and was killed."""


def qactuar_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every qactuar the tests start: apps and the repository importable."""
    full = dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT)
    full.pop("QACTUAR_CONFIG", None)
    full.update(env or {})
    return full


def held_socket(host: str = "127.0.0.1", family: int = socket.AF_INET) -> socket.socket:
    """A listening TCP socket on a free port, inheritable: pass it with ``--fd``."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A port free a moment ago: ONLY for programs that cannot be handed a listening
    socket (nginx, HAProxy). Another process may take it before they bind; they then
    fail to start, loudly. qactuar gets a held socket (start_qactuar)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_program(argv: Sequence[str], log_path: str, ready: Callable[[], object],
                  what: str, timeout: float = START_TIMEOUT, cwd: str | None = None,
                  env: dict[str, str] | None = None,
                  pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    """Run another program (a proxy, a browser, a wrapper of qactuar) in its own process
    group, output to ``log_path``; return once ``ready()`` is true (AssertionError naming
    ``what`` if it is not in time or the program exits first). Stop it with
    ``stop_process``. ``env`` replaces the environment."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
                                env=env, pass_fds=tuple(pass_fds))

    def started() -> object:
        if proc.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                raise AssertionError(
                    f"{argv[0]} exited with {proc.returncode}: {fh.read()[-2000:]}")
        return ready()

    try:
        wait_until(started, timeout, what=what, interval=0.05)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def refuses(port: int, host: str = "127.0.0.1") -> bool:
    """True if a connection to ``host:port`` is refused now (a timeout is not a refusal)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def run_qactuar(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
                timeout: float = 30,
                pass_fds: Sequence[int] = ()) -> subprocess.CompletedProcess[str]:
    """``qactuar <args>`` expected to stop by itself (at start-up): its exit and output."""
    return subprocess.run(
        [sys.executable, "-m", "qactuar", *args], cwd=cwd or APPS, env=qactuar_env(env),
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        start_new_session=True, pass_fds=tuple(pass_fds),
    )


class Spawned:
    """A started qactuar: its process, where it listens, and all it printed."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: str,
                 host: str = "127.0.0.1") -> None:
        self.proc = proc
        self.pid = proc.pid
        self._port = port
        self._host = host
        self.url_override: str | None = None
        self.log_path = log_path

    def _resolve(self) -> None:
        """A server that bound its own port 0: the port from its ``Listening on`` line."""
        if self._port:
            return
        found = _LISTENING.search(self.wait_for_log("Listening on http"))
        assert found is not None
        self._host, self._port = found.group(1).strip("[]"), int(found.group(2))

    @property
    def port(self) -> int:
        self._resolve()
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        self._port = value

    @property
    def host(self) -> str:
        self._resolve()
        return self._host

    @property
    def url(self) -> str:
        """``http://host:port`` (a test may set another, e.g. https://...)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.url_override or f"http://{host}:{self.port}"

    @url.setter
    def url(self, value: str) -> None:
        self.url_override = value

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        """All the process printed so far (stdout and stderr interleaved)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT, count: int = 1) -> str:
        """The output once ``text`` is in it ``count`` times; AssertionError naming it if not.

        Fails at once, with the output, if the process exits first.
        """

        def seen() -> str:
            output = self.output()
            if output.count(text) >= count:
                return output
            if self.proc.poll() is not None and self.output().count(text) < count:
                raise AssertionError(
                    f"qactuar exited with {self.proc.returncode} before logging {text!r}:\n"
                    + output[-3000:])
            return ""

        return wait_until(seen, timeout, what=f"{text!r} in qactuar's output")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """stop_process(); if it had to kill, the AssertionError ends with the server's output."""
        try:
            stop_process(self.proc, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- its output, last 4000 characters ---\n"
                                 + self.output()[-4000:]) from None


def _listen_mode(args: Sequence[str], listen: str) -> str:
    """``auto``: held, unless the arguments need qactuar to bind (an address, --reuse-port)."""
    if listen != "auto":
        return listen
    return "own" if any(a.split("=")[0] in OWN_BINDING_ARGS for a in args) else "held"


def _listen_args(args: Sequence[str], listen: str) -> list[str]:
    given = [a for a in args if a.split("=")[0] in ADDRESS_ARGS]
    if listen == "held":
        assert not given, (
            f"{given} name an address: pass listen='own' to let qactuar bind it")
        return []
    return [] if given else ["--host", "127.0.0.1", "--port", "0"]


_LISTENING = re.compile(r"Listening on https?://(\[[^\]]+\]|[^:/\s]+):(\d+)")


def start_qactuar(*args: str, log_path: str,
                  listen: Literal["held", "own", "auto"] = "auto",
                  ready: str | None = "Listening on", env: dict[str, str] | None = None,
                  cwd: str | None = None, launcher: str = "qactuar",
                  pass_fds: Sequence[int] = ()) -> Spawned:
    """Start ``python -m <launcher> <args>`` in its own process group (see the module's doc).

    ``listen``: "held", "own", or "auto" (held unless ``args`` name an address or
    ``--reuse-port``). ``ready``: the output to wait for before returning (None:
    return at once, for a server expected to fail or to be driven through its start-up).
    """
    listen = _listen_mode(args, listen)  # type: ignore[assignment]
    held = held_socket() if listen == "held" else None
    argv = [sys.executable, "-m", launcher, *_listen_args(args, listen), *args]
    fds = list(pass_fds)
    inode = 0
    if held is not None:
        argv[3:3] = ["--fd", str(held.fileno())]
        fds.append(held.fileno())
        inode = os.fstat(held.fileno()).st_ino
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, cwd=cwd or APPS, env=qactuar_env(env), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=fds,
                start_new_session=True,
            )
    finally:
        port = 0
        if held is not None:
            # the server has it now: closing the test's copy leaves the port
            # bound by the server alone (a stopped server refuses, as it should)
            port = held.getsockname()[1]
            held.close()
    spawned = Spawned(proc, port, log_path)
    if ready is None:
        return spawned
    try:
        if inode and ready == "Listening on":
            _wait_serving(spawned, inode)
        else:
            spawned.wait_for_log(ready)
    except BaseException:
        spawned.stop()
        raise
    return spawned


def _wait_serving(spawned: Spawned, inode: int) -> None:
    """Until qactuar serves the held socket: its ``Listening on`` line, or, when its
    INFO lines do not reach the output (LOGS, --log-level warning), until a process of
    its group polls the socket (an epoll instance watching its inode)."""

    def serving() -> bool:
        output = spawned.output()
        if "Listening on" in output:
            return True
        if spawned.proc.poll() is not None:
            raise AssertionError(
                f"qactuar exited with {spawned.proc.returncode} before serving:\n"
                + output[-3000:])
        if "Using inherited socket" in output:
            return False  # its INFO lines show: the Listening line comes
        return polled_by_group(spawned.pid, inode)

    wait_until(serving, START_TIMEOUT, what="qactuar to serve its socket")


def polled_by_group(pgid: int, inode: int) -> bool:
    """True if a process of group ``pgid`` has an epoll instance watching ``inode``."""
    needle = f" ino:{inode:x} "
    for pid in process_group(pgid):
        try:
            entries = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for entry in entries:
            try:
                with open(f"/proc/{pid}/fdinfo/{entry}") as fh:
                    if needle in fh.read():
                        return True
            except OSError:
                continue
    return False


def process_group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``proc`` (by PID), wait; then sweep its process group (see the module's doc).

    AssertionError if the process had to be killed after ``timeout``.
    """
    hung = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            hung = True
            proc.kill()
            proc.wait(10)
    sweep_group(proc.pid)
    if hung:
        raise AssertionError(f"process {proc.pid} did not stop within {timeout:g} s of SIGTERM "
                             f"and was killed: {proc.args!r}")


#: Seconds a process of a stopped server's group may take to leave by itself.
LEADERLESS_GRACE = 1.0


def sweep_group(pgid: int) -> list[int]:
    """SIGKILL what is left of process group ``pgid`` (started with start_new_session).

    A process that leaves by itself within ``LEADERLESS_GRACE`` seconds is no
    leftover: the fork model's zygote exits once it reads that its parent is
    gone (a parent stopped with SIGKILL)."""
    left = process_group(pgid)
    for _ in range(int(LEADERLESS_GRACE / 0.02)):
        if not left:
            return []
        time.sleep(0.02)
        left = process_group(pgid)
    if not left:
        return []
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return []
    warnings.warn(f"processes {left} of group {pgid} outlived its leader and were killed",
                  LeftoverProcessWarning, stacklevel=3)
    wait_until(lambda: not process_group(pgid), 10, what=f"group {pgid} to be gone")
    return left


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid``, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fd_targets(pid: int) -> list[str]:
    """What each descriptor ``pid`` holds names ("socket:[123]", "pipe:[4]", a path)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            continue
    return found


def children_of(pid: int) -> list[int]:
    """The pids of ``pid``'s live children (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []


def fork_children(pid: int) -> list[int]:
    """The request children of the fork-model parent ``pid``: those of its zygotes
    (the only children the parent forks itself)."""
    return [child for zygote in children_of(pid) for child in children_of(zygote)]


def calls_with_peak_children(
    pid: int, call: Callable[[], int], count: int
) -> tuple[list[int], int]:
    """Run ``call`` in ``count`` threads at once; (their results, most request children of
    the fork-model parent ``pid`` seen)."""
    results: list[int] = []
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, len(fork_children(pid)))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    callers = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    stop.set()
    sampler.join()
    assert not any(t.is_alive() for t in callers), "a call did not return within 60 s"
    return results, peak


def model_args(model: str) -> tuple[str, ...]:
    """``--model <model>``, with one worker for ``prefork`` (a small machine); ``fork``
    stays one parent (with ``--workers`` it would run under a prefork master)."""
    return ("--model", model, "--workers", "1") if model == "prefork" else ("--model", model)
