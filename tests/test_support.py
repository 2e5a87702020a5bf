"""tests/support fails a test when it should: a server error, a hung stop, a hang, a leftover."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from apps import basic, core  # type: ignore[import-not-found]
from support import (
    LeftoverProcessWarning,
    QactuarDriver,
    RawClient,
    exchange,
    model_args,
    process_group,
    read_until_closed,
    serve_in_thread,
    serve_qactuar,
    start_qactuar,
    stop_process,
    wait_until,
)

from qactuar.importer import AppImportError
from qactuar.lifespan import LifespanFailure

# -- serve_in_thread --------------------------------------------------------------


class FailsAfterStart(QactuarDriver):
    """Serves, then its serving task raises (as a server bug would) once told to."""

    def __init__(self) -> None:
        super().__init__(LIFESPAN="off")
        self.fail = threading.Event()

    async def start(self, app: Any, sock: socket.socket | None) -> None:
        await super().start(app, sock)
        serving = self.task

        async def serve_then_fail() -> None:
            while not self.fail.is_set():
                await asyncio.sleep(0.01)
            raise RuntimeError("the server broke after start-up")

        self.task = asyncio.ensure_future(serve_then_fail())
        self._serving = serving

    async def stop(self) -> None:
        self.task = self._serving
        await super().stop()


def test_an_error_after_start_up_fails_the_test() -> None:
    driver = FailsAfterStart()
    with pytest.raises(RuntimeError, match="broke after start-up"):  # noqa: PT012
        with serve_in_thread(driver, basic.hello) as served:
            assert httpx.get(served.url + "/").status_code == 200
            driver.fail.set()
            wait_until(lambda: driver.task is not None and driver.task.done(), 5,
                       what="the serving task to fail")


class HangsOnStop(QactuarDriver):
    def __init__(self) -> None:
        super().__init__(LIFESPAN="off")
        self.release = threading.Event()

    async def stop(self) -> None:
        while not self.release.is_set():  # a stop that never ends (until the test lets it)
            await asyncio.sleep(0.01)
        await super().stop()


def test_a_stop_that_hangs_fails_the_test() -> None:
    driver = HangsOnStop()
    try:
        with pytest.raises(AssertionError, match="stop did not end within 0.5 s"):  # noqa: PT012
            with serve_in_thread(driver, basic.hello, stop_timeout=0.5) as served:
                assert httpx.get(served.url + "/").status_code == 200
    finally:
        driver.release.set()


def test_a_start_up_failure_is_raised_in_the_test() -> None:
    with pytest.raises(LifespanFailure, match="db.example:5432 unreachable"):
        with serve_qactuar(core.startup_fails):
            raise AssertionError("served although its start-up failed")
    with pytest.raises(AppImportError, match="no module named 'apps.no_such_module'"):
        with serve_qactuar("apps.no_such_module:app"):
            raise AssertionError("served an app that does not import")


def test_the_qactuar_driver_serves_and_stops_cleanly() -> None:
    with serve_qactuar(basic.hello) as srv:
        assert httpx.get(srv.url + "/").text == "Hello, world!"
    assert srv.server.should_exit


# -- the raw reader ---------------------------------------------------------------


@pytest.fixture
def silent_listener() -> Any:
    """A peer that accepts and never answers nor closes."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener


def test_read_until_closed_raises_on_a_peer_that_never_closes(silent_listener: Any) -> None:
    with socket.create_connection(silent_listener.getsockname(), timeout=5) as sock:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            read_until_closed(sock, timeout=0.3)
        assert time.monotonic() - started < 10


def test_a_response_that_never_comes_is_a_timeout_not_an_empty_answer(
        silent_listener: Any) -> None:
    with RawClient(silent_listener.getsockname()[1], timeout=0.3) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        with pytest.raises(TimeoutError):
            client.response()


def test_a_close_where_a_response_was_due_is_an_eof_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with RawClient(listener.getsockname()[1]) as client:
            conn, _ = listener.accept()
            conn.close()
            with pytest.raises(EOFError):
                client.response()


def test_exchange_reads_a_whole_answer(serve: Any) -> None:
    with serve(basic.hello) as srv:
        answer = exchange(srv.port, b"GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"Hello, world!")


# -- processes and polling ----------------------------------------------------------


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="waiting for the moon"):
        wait_until(lambda: False, 0.05, what="the moon")
    assert wait_until(lambda: 42, 1, what="an answer") == 42


def test_the_port_is_held_and_the_group_is_swept(tmp_path: Any) -> None:
    # a prefork master and its workers: all in the group the test started
    spawned = start_qactuar("basic:hello", "--model", "prefork", "--workers", "2",
                            log_path=str(tmp_path / "log"))
    try:
        assert "Using inherited socket" in spawned.output()
        assert httpx.get(spawned.url + "/").text == "Hello, world!"
        wait_until(lambda: len(process_group(spawned.pid)) >= 3, what="two workers")
        # a worker that outlives its master (as a bug would leave one)
        worker = next(pid for pid in process_group(spawned.pid) if pid != spawned.pid)
        os.kill(worker, signal.SIGSTOP)
        os.kill(spawned.pid, signal.SIGKILL)
        spawned.wait()
        assert worker in process_group(spawned.pid)
        with pytest.warns(LeftoverProcessWarning, match=str(worker)):
            stop_process(spawned.proc)
        assert process_group(spawned.pid) == []
    finally:
        stop_process(spawned.proc)


def test_a_server_that_ignores_sigterm_fails_the_test(tmp_path: Any) -> None:
    spawned = start_qactuar("basic:hello", log_path=str(tmp_path / "log"))
    os.kill(spawned.pid, signal.SIGSTOP)  # it cannot act on the SIGTERM
    with pytest.raises(AssertionError, match="did not stop within 0.5 s"):
        stop_process(spawned.proc, timeout=0.5)
    assert spawned.proc.returncode == -signal.SIGKILL


def test_own_binding_reads_the_port_from_the_log(tmp_path: Any) -> None:
    spawned = start_qactuar("basic:hello", listen="own", log_path=str(tmp_path / "log"))
    try:
        assert spawned.port and f"Listening on {spawned.url}" in spawned.output()
        assert httpx.get(spawned.url + "/").text == "Hello, world!"
    finally:
        stop_process(spawned.proc)


@pytest.mark.parametrize("model", ["fork", "async", "prefork"])
def test_a_server_that_logs_no_info_is_ready_once_it_polls_its_socket(tmp_path: Any,
                                                                     model: str) -> None:
    spawned = start_qactuar("basic:hello", *model_args(model),
                            "--log-level", "warning", log_path=str(tmp_path / "log"))
    try:
        assert "Listening on" not in spawned.output()
        assert httpx.get(spawned.url + "/", timeout=5).text == "Hello, world!"
    finally:
        stop_process(spawned.proc)
