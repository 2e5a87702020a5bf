"""Shared fixtures: qactuar servers on free loopback ports, raw sockets, processes.

``serve(app, **settings)`` runs a real ``qactuar.Server`` (the async model's
core) in a background thread with its own event loop and yields its base
URL; ``spawn_qactuar(*args)`` runs the ``qactuar`` command as a process and
stops it by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from qactuar import Config, Server
from qactuar.asgi.types import ASGIApp
from qactuar.importer import load_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop, port: int) -> None:
        self.server = server
        self.loop = loop
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def connect(self, timeout: float = 5) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock

    def raw(self, data: bytes, timeout: float = 5) -> bytes:
        """Send ``data`` on a new connection; read until the server closes it."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_until_closed(sock, timeout)

    def stop(self) -> None:
        self.server.should_exit = True


def read_until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp | str, **settings: Any) -> Iterator[RunningServer]:
    """A qactuar Server on 127.0.0.1:<free port> in a thread, stopped on exit."""
    settings.setdefault("HOST", "127.0.0.1")
    settings.setdefault("PORT", 0)
    settings.setdefault("LIFESPAN", "auto")
    settings.setdefault("GRACEFUL_TIMEOUT", 5)
    config = Config()
    config.update(settings, "test")
    server = Server(load_app(app), config)
    loop = asyncio.new_event_loop()
    errors: list[BaseException] = []
    ready = threading.Event()

    async def main() -> None:
        try:
            await server.serve()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            ready.set()

    async def watch() -> None:
        task = loop.create_task(main())
        await asyncio.wait([task, loop.create_task(server.started.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        ready.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(watch(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("server did not start within 10s")
    if errors:
        thread.join(5)
        raise errors[0]
    port = server.sockets[0].getsockname()[1]
    running = RunningServer(server, loop, port)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(15)
        if not thread.is_alive():
            loop.close()


@pytest.fixture
def serve() -> Callable[..., Any]:
    """``with serve(app, **settings) as srv: httpx.get(srv.url)``."""
    return serve_in_thread


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"qactuar exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"qactuar did not listen on {port} within {timeout}s")


def children_of(pid: int) -> list[int]:
    """The pids of ``pid``'s live children (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []


def calls_with_peak_children(
    pid: int, call: Callable[[], int], count: int
) -> tuple[list[int], int]:
    """Run ``call`` in ``count`` threads at once; (their results, most children of ``pid`` seen)."""
    results: list[int] = []
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, len(children_of(pid)))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    callers = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(30)
    stop.set()
    sampler.join()
    return results, peak


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM ``proc`` (by PID) and wait; SIGKILL it if it is still there after ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Spawned:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: str) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        """All the process printed so far (stdout and stderr interleaved)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def spawn_qactuar(tmp_path: Any, request: Any) -> Iterator[Callable[..., Spawned]]:
    """Start ``qactuar <args>`` in tests/apps' directory; every process is stopped.

    A test module's ``QACTUAR_ARGS`` go before the arguments. Modules that
    do not time keep-alive set ``--keep-alive-timeout 1``: the server then
    sweeps (and so notices a stop signal) every 0.25 s instead of every
    second, and their processes stop sooner.

    ``launcher`` is the module run with ``-m``: ``failing_fork`` makes chosen
    fork() calls fail (``FAIL_FORKS`` in ``env``).
    """
    started: list[Spawned] = []

    def spawn(*args: str, port: int | None = None, wait: bool = True,
              env: dict[str, str] | None = None, cwd: str | None = None,
              launcher: str = "qactuar") -> Spawned:
        port = port or free_port()
        full_env = dict(os.environ, PYTHONPATH=os.path.join(TESTS, "apps") + os.pathsep + ROOT)
        full_env.pop("QACTUAR_CONFIG", None)
        full_env.update(env or {})
        log_path = str(tmp_path / f"qactuar-{len(started)}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", launcher, "--host", "127.0.0.1", "--port", str(port),
                 *getattr(request.module, "QACTUAR_ARGS", ()), *args],
                cwd=cwd or os.path.join(TESTS, "apps"), env=full_env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        spawned = Spawned(proc, port, log_path)
        started.append(spawned)
        if wait:
            wait_for_port(port, proc)
        return spawned

    yield spawn
    for spawned in started:
        spawned.stop()


@pytest.fixture(scope="module")
def browser() -> str:
    """Debian's chromium (installed by scripts/install-test-tools when missing and root)."""
    from browser import chromium

    path = chromium()
    if path is None:
        pytest.skip("chromium is not installed and cannot be as an ordinary user: "
                    "sudo apt-get install chromium")
    return path


def wait_for(check: Callable[[], Any], timeout: float = 10,
             why: Callable[[], str] | None = None) -> Any:
    """Poll ``check()`` until it returns something true and return that.

    Fails the test after ``timeout`` seconds, with ``why()`` (a process's
    output, say) in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout}s\n{why() if why else ''}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until(predicate: Callable[[], object], timeout: float = 5) -> bool:
    """Poll ``predicate`` every 10 ms until it is true (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def wait_for_output(spawned: Spawned, text: str, timeout: float = 10) -> str:
    """Poll ``spawned``'s output until it holds ``text``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    output = spawned.output()
    while text not in output:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{text!r} not in the output within {timeout}s:\n{output}")
        time.sleep(0.02)
        output = spawned.output()
    return output
