"""Shared fixtures over tests/support (the helpers themselves live there).

``serve(app, **settings)`` runs a real ``qactuar.Server`` (the async model's
core) in a background thread with its own event loop and yields a
``RunningServer`` (``.url``, ``.port``, ``.server``); ``spawn_qactuar(*args)``
runs the ``qactuar`` command as a process on a held port and stops it, and
its process group, by PID.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
from support import (
    ROOT,
    TESTS,
    RunningServer,
    Spawned,
    calls_with_peak_children,
    children_of,
    read_until_closed,
    serve_qactuar,
    start_qactuar,
    stop_process,
)

__all__ = ["ROOT", "TESTS", "RunningServer", "Spawned", "calls_with_peak_children",
           "children_of", "free_port", "read_until_closed", "serve_in_thread", "stop_process",
           "wait_for_port"]


@pytest.fixture
def serve() -> Callable[..., Any]:
    """``with serve(app, **settings) as srv: httpx.get(srv.url)`` (support.serve_qactuar)."""
    return serve_qactuar


@pytest.fixture
def spawn_qactuar(tmp_path: Any, request: Any) -> Iterator[Callable[..., Spawned]]:
    """Start ``qactuar <args>`` in tests/apps' directory (support.start_qactuar); all are stopped.

    The port is held (``--fd``) unless the arguments need qactuar to bind (an
    address, ``--reuse-port``) or ``listen="own"`` says so. ``wait``
    (default) returns once it logged ``Listening on``. A test module's
    ``QACTUAR_ARGS`` go before the arguments. ``launcher`` is the module run
    with ``-m``: ``failing_fork`` makes chosen fork() calls fail
    (``FAIL_FORKS`` in ``env``). Stopping a server sweeps its process group;
    one that does not stop within the bound fails the test.
    """
    started: list[Spawned] = []

    def spawn(*args: str, wait: bool = True, env: dict[str, str] | None = None,
              cwd: str | None = None, launcher: str = "qactuar",
              listen: Literal["held", "own", "auto"] = "auto",
              ready: str = "Listening on") -> Spawned:
        log_path = str(tmp_path / f"qactuar-{len(started)}.log")
        spawned = start_qactuar(
            *getattr(request.module, "QACTUAR_ARGS", ()), *args, log_path=log_path,
            listen=listen, ready=ready if wait else None, env=env, cwd=cwd, launcher=launcher)
        started.append(spawned)
        return spawned

    yield spawn
    failures = []
    for spawned in started:
        try:
            spawned.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, failures


# -- legacy aliases: each goes when the files named migrate to tests/support --------------

# legacy alias: remove when test_limits.py, test_websocket_frames.py migrate
serve_in_thread = serve_qactuar


def free_port() -> int:
    """legacy alias: remove when test_cli.py, test_websocket.py migrate (ports are held now:
    support.held_socket / start_qactuar)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """legacy alias: remove when test_cli.py, test_websocket.py migrate (wait for the
    ``Listening on`` line: Spawned.wait_for_log)."""
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
