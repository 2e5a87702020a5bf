"""The async model as a process (issue 3, item 4): signals, graceful stop, loops."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from apps import basic  # type: ignore[import-not-found]
from rawhttp import RawConnection


def request_in_thread(url: str, timeout: float = 10) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            response = httpx.get(url, timeout=timeout)
            result["status"] = response.status_code
            result["text"] = response.text
        except httpx.HTTPError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def refuses_connections(port: int, timeout: float = 3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_sigterm_lets_in_flight_request_finish(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow")
    thread, result = request_in_thread(proc.url + "/?seconds=1.5")
    time.sleep(0.4)  # the request is in flight
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert refuses_connections(proc.port), "new connections still accepted after SIGTERM"
    assert thread.is_alive(), "refused only once the request was over"
    thread.join(10)
    assert result.get("status") == 200, result
    assert result["text"] == "done"
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 5


def test_graceful_timeout_bounds_the_wait(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow", "--graceful-timeout", "0.5")
    thread, result = request_in_thread(proc.url + "/?seconds=20", timeout=20)
    time.sleep(0.4)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    status = proc.wait(10)
    elapsed = time.monotonic() - started
    thread.join(5)
    assert elapsed < 4, f"took {elapsed:.1f}s to stop with GRACEFUL_TIMEOUT 0.5"
    assert status == 0
    assert "status" not in result  # the unfinished request was cut, not answered
    assert isinstance(result.get("error"), httpx.HTTPError)


def test_second_sigint_stops_at_once(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow")  # GRACEFUL_TIMEOUT is 30s by default
    thread, result = request_in_thread(proc.url + "/?seconds=20", timeout=20)
    time.sleep(0.4)
    proc.signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.proc.poll() is None  # the first SIGINT waits for the request
    started = time.monotonic()
    proc.signal(signal.SIGINT)
    proc.wait(10)
    assert time.monotonic() - started < 3
    thread.join(5)
    assert "status" not in result


@pytest.mark.parametrize("loop, expected", [
    ("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")])
def test_loop_option_serves(spawn_qactuar, loop, expected):
    if expected == "uvloop":
        pytest.importorskip("uvloop")
    proc = spawn_qactuar("--model", "async", "core:loop_report", "--loop", loop)
    report = httpx.get(proc.url + "/", timeout=5).json()
    assert report["loop"].split(".")[0] == expected, report
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_stops_accepting_as_soon_as_told(serve):
    with serve(basic.hello) as srv:  # default timeouts: one sweep per second
        state = srv.server.state
        # set should_exit just after a sweep, the worst case for a sweeping server
        clock = state.clock
        deadline = time.monotonic() + 3
        while state.clock == clock and time.monotonic() < deadline:
            time.sleep(0.002)
        srv.server.should_exit = True
        time.sleep(0.2)
        try:
            with srv.connect(timeout=2) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                sock.settimeout(2)
                data = sock.recv(65536)
        except OSError:
            data = b""
    assert not data.startswith(b"HTTP/1.1 200"), "served a new connection after should_exit"


def test_response_finished_during_stop_says_connection_close(spawn_qactuar):
    # --keep-alive-timeout 1: the server sweeps (and sees the signal) every 0.25 s
    proc = spawn_qactuar("--model", "async", "basic:slow", "--keep-alive-timeout", "1")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(b"GET /?seconds=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        proc.signal(signal.SIGTERM)
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200")
    assert data.endswith(b"done")
    assert b"\r\nconnection: close" in head


@pytest.mark.parametrize("model", ["async", "fork"])
def test_request_arriving_just_after_sigterm_on_an_idle_connection_is_answered(
        spawn_qactuar, model):
    # Under load a quiet keep-alive connection usually has its next request on
    # the way: a graceful stop answers it (saying connection: close) instead
    # of closing the connection under it.
    proc = spawn_qactuar("basic:hello", "--model", model)
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        conn = RawConnection(sock)
        assert conn.request("/").status == 200
        proc.signal(signal.SIGTERM)
        time.sleep(0.05)
        response = conn.request("/")
        assert response.status == 200
        assert response.headers.get("connection") == "close"
    assert proc.wait() == 0
