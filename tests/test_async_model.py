"""The async model as a process (issue 3, item 4): signals, graceful stop, loops."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import types
from typing import Any

import httpx
import pytest
from apps import basic  # type: ignore[import-not-found]
from support import RawClient, refuses, request_as_the_stop_begins, wait_until

from qactuar.server import server as server_module


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


def test_sigterm_lets_in_flight_request_finish(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow_in_flight")
    thread, result = request_in_thread(proc.url + "/?seconds=1.5")
    proc.wait_for_log("in flight")
    proc.signal(signal.SIGTERM)
    wait_until(lambda: refuses(proc.port), 3, what="new connections refused after SIGTERM")
    assert thread.is_alive(), "refused only once the request was over"
    thread.join(10)
    assert result.get("status") == 200, result
    assert result["text"] == "done"
    assert proc.wait(10) == 0


def test_graceful_timeout_bounds_the_wait(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow_in_flight", "--graceful-timeout", "0.5")
    thread, result = request_in_thread(proc.url + "/?seconds=20", timeout=20)
    proc.wait_for_log("in flight")
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    status = proc.wait(10)
    elapsed = time.monotonic() - started
    thread.join(5)
    assert not thread.is_alive()
    assert elapsed < 4, f"took {elapsed:.1f}s to stop with GRACEFUL_TIMEOUT 0.5"
    assert status == 0
    # the unfinished request was cut: the connection closed with no response
    assert isinstance(result.get("error"), httpx.RemoteProtocolError), result
    assert "Graceful timeout: closing 1 connection(s) still busy" in proc.output()


def test_second_sigint_stops_at_once(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow_in_flight")  # GRACEFUL_TIMEOUT 30 s
    thread, result = request_in_thread(proc.url + "/?seconds=20", timeout=20)
    proc.wait_for_log("in flight")
    proc.signal(signal.SIGINT)
    proc.wait_for_log("SIGINT: stopping gracefully")
    time.sleep(0.3)
    # the first SIGINT waits for the request: its connection stays open
    assert thread.is_alive() and not result, result
    assert proc.proc.poll() is None
    proc.signal(signal.SIGINT)
    assert proc.wait(10) == 0  # not the 30 s GRACEFUL_TIMEOUT
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), httpx.RemoteProtocolError), result


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


def test_stops_accepting_as_soon_as_told(serve, monkeypatch):
    # A controlled clock: the main loop's sweep never fires on its own (its
    # wait has no timeout), so only should_exit itself can stop the server.
    def no_sweep(awaitable: Any, timeout: float | None) -> Any:
        return real_wait_for(awaitable, None)

    real_wait_for = asyncio.wait_for
    monkeypatch.setattr(server_module, "asyncio",
                        types.SimpleNamespace(**{**vars(asyncio), "wait_for": no_sweep}))
    with serve(basic.hello) as srv:
        assert httpx.get(srv.url + "/", timeout=5).status_code == 200
        clock = srv.server.state.clock
        srv.server.should_exit = True
        wait_until(lambda: refuses(srv.port), 10, what="connections refused after should_exit")
        assert srv.server.state.clock != clock  # stopped by the wake-up, not a sweep


def test_response_finished_during_stop_says_connection_close(spawn_qactuar):
    proc = spawn_qactuar("--model", "async", "basic:slow_in_flight")
    with RawClient(proc.port, timeout=10) as client:
        client.send(b"GET /?seconds=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        proc.wait_for_log("in flight")
        proc.signal(signal.SIGTERM)
        response = client.response()
        assert client.closed_by_server(10)
    assert (response.status, response.body) == (200, b"done")
    assert response.text_header("connection") == "close"


@pytest.mark.parametrize("model", ["async", "fork"])
def test_request_arriving_just_after_sigterm_on_an_idle_connection_is_answered(
        spawn_qactuar, model):
    # Under load a quiet keep-alive connection usually has its next request on
    # the way: a graceful stop answers it (saying connection: close) instead
    # of closing the connection under it. A client too late for the grace
    # window tries again with a new server (support.stops).
    for _ in range(3):
        proc = spawn_qactuar("basic:hello", "--model", model)
        with RawClient(proc.port) as conn:
            assert conn.request("/").status == 200
            response = request_as_the_stop_begins(proc, conn, "/")
        assert proc.wait() == 0
        if response is not None:
            break
    else:
        pytest.fail("the client missed the stop's grace window three times")
    assert response.status == 200
    assert response.text_header("connection") == "close"
