"""REQUEST_TIMEOUT (fork model) with time driven by hand.

The parent's side runs for real: ``dispatch`` queues the request, ``_fork``
starts a "child", ``kill_overdue`` (what the sweep every
CHECK_PROCESS_INTERVAL runs) kills it, the pidfd wakes ``_reap`` and
``_settle`` answers the client. Only ``fork()`` is replaced: the child is a
``sleep`` process, so the test decides whether it had begun the response
(its slot says ``RESPONDING``, as a real child's does once it writes).

The promise (README, fork model): the client gets 504 if no byte of the
response was sent, else the connection is closed; a WebSocket is exempt.
"""

from __future__ import annotations

import asyncio
import logging
import select
import subprocess
from typing import Any

import pytest
from protocol_harness import GET, Clock, FakeTransport, Harness, header_lines, ok_app, run, settle
from protocol_harness import status_of as status

from qactuar import Config
from qactuar.asgi.cycle import AppLost
from qactuar.models.fork import ForkServer, _Child
from qactuar.models.fork_child import RESPONDING
from qactuar.server.protocol import HTTPProtocol

TIMEOUT = 5.0
WS_HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class SleepForks(ForkServer):
    """A ForkServer whose children are ``sleep`` processes, not forks of the test."""

    def __init__(self) -> None:
        config = Config()
        config.update({"REQUEST_TIMEOUT": TIMEOUT, "LIFESPAN": "off"}, "test")
        super().__init__(ok_app, config)
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start_child(self, conn: HTTPProtocol, slot: int) -> int:
        proc = subprocess.Popen(["sleep", "60"])
        self.procs.append(proc)
        return proc.pid

    def child(self) -> _Child:
        [child] = self.children.values()
        return child

    def connect(self, request: bytes) -> tuple[HTTPProtocol, FakeTransport]:
        conn = HTTPProtocol(self.state)
        transport = FakeTransport(conn)
        conn.connection_made(transport)
        conn.data_received(request)
        return conn, transport

    async def reaped(self, child: _Child) -> None:
        """Until the parent has reaped ``child`` (its pidfd is readable once it is gone)."""
        readable, _, _ = select.select([child.pidfd], [], [], 10)
        assert readable, f"child {child.pid} still alive 10 s after SIGKILL"
        for _ in range(100):
            await settle(1)
            if child.pid not in self.children:
                return
        raise AssertionError("the parent did not reap its child")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def in_fork_server(scenario: Any) -> None:
    """Run ``scenario(server, clock)`` on a ClockLoop."""
    async def main(clock: Clock) -> None:
        server = SleepForks()
        try:
            await scenario(server, clock)
        finally:
            server.stop()

    run(main)


def test_a_child_past_request_timeout_is_killed_and_its_client_gets_504(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(server: SleepForks, clock: Clock) -> None:
        conn, transport = server.connect(GET)
        await settle()  # dispatch, then the "fork" on the next turn
        child = server.child()
        server.kill_overdue(child.started + TIMEOUT - 0.01)
        assert not child.timed_out and server.procs[0].poll() is None
        with caplog.at_level(logging.WARNING, "qt_server"):
            server.kill_overdue(child.started + TIMEOUT + 0.01)
            assert child.timed_out
            await server.reaped(child)
            await settle()
        data = bytes(transport.written)
        assert status(data) == 504, data
        assert b"connection: close" in header_lines(data)
        assert transport.closed and transport.after_close == b""
        assert f"child {child.pid} killed after REQUEST_TIMEOUT (5s)" in caplog.text

    in_fork_server(scenario)


def test_after_the_child_began_its_response_a_timeout_only_closes_the_connection() -> None:
    async def scenario(server: SleepForks, clock: Clock) -> None:
        conn, transport = server.connect(GET)
        await settle()
        child = server.child()
        server.slots[child.slot] = RESPONDING  # the child wrote part of a response
        server.kill_overdue(child.started + TIMEOUT + 0.01)
        await server.reaped(child)
        await settle()
        # the child's bytes went out on the socket: the parent adds no second response
        assert transport.written == b"" and transport.after_close == b""
        assert transport.closed and transport.lost
        assert conn not in server.state.connections

    in_fork_server(scenario)


def test_a_websocket_child_is_exempt_from_request_timeout() -> None:
    async def scenario(server: SleepForks, clock: Clock) -> None:
        conn, transport = server.connect(WS_HANDSHAKE)
        await settle()
        child = server.child()
        assert child.exempt
        server.kill_overdue(child.started + 100 * TIMEOUT)
        assert not child.timed_out
        assert server.procs[0].poll() is None
        assert not transport.closed

    in_fork_server(scenario)


def test_a_request_timeout_of_0_kills_no_child() -> None:
    async def scenario(server: SleepForks, clock: Clock) -> None:
        server.config.REQUEST_TIMEOUT = 0
        server.connect(GET)
        await settle()
        child = server.child()
        server.kill_overdue(child.started + 10_000)
        assert not child.timed_out and server.procs[0].poll() is None

    in_fork_server(scenario)


def test_a_relayed_request_past_request_timeout_gets_504() -> None:
    """A connection the parent keeps (TLS): the same sweep, answered by the relay."""
    async def scenario(server: SleepForks, clock: Clock) -> None:
        conn = HTTPProtocol(server.state)
        transport = FakeTransport(conn)
        conn.connection_made(transport)
        conn.tls = {}  # as a TLS connection's: dispatch relays it
        conn.data_received(GET)
        await settle()
        child = server.child()
        assert child.link is not None
        server.kill_overdue(child.started + TIMEOUT + 0.01)
        await server.reaped(child)
        await settle()
        data = bytes(transport.written)
        assert status(data) == 504, data
        assert transport.closed

    in_fork_server(scenario)


# The relay raises AppLost(504) in the parent's cycle when the sweep killed
# its child; before or after the response began, as a child's own could be.


def lost_after(sent: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in sent:
            await send(message)
        raise AppLost(504, "Gateway Timeout")

    return app


def test_relayed_request_timed_out_before_any_byte_gets_504() -> None:
    async def scenario(clock: Clock) -> None:
        h = Harness(lost_after([]), clock)
        conn, transport = h.connect()
        conn.data_received(GET)
        await settle()
        data = bytes(transport.written)
        assert status(data) == 504 and b"connection: close" in header_lines(data)
        assert transport.closed

    run(scenario)


def test_relayed_request_timed_out_mid_response_closes_without_a_second_response() -> None:
    async def scenario(clock: Clock) -> None:
        h = Harness(lost_after([
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.body", "body": b"partial", "more_body": True},
        ]), clock)
        conn, transport = h.connect()
        conn.data_received(GET)
        await settle()
        data = bytes(transport.written)
        assert status(data) == 200 and data.count(b"HTTP/1.1 ") == 1
        assert data.endswith(b"7\r\npartial\r\n")  # no last chunk: the client sees it cut
        assert transport.closed and transport.after_close == b""

    run(scenario)


def test_the_sweep_runs_kill_overdue_every_check_process_interval() -> None:
    async def scenario(server: SleepForks, clock: Clock) -> None:
        calls: list[float] = []
        server.kill_overdue = calls.append  # type: ignore[method-assign]
        interval = server.config.CHECK_PROCESS_INTERVAL
        sweep = asyncio.get_running_loop().create_task(server.check_children())
        try:
            await settle()
            for count in range(1, 4):
                clock.now += interval - 0.01
                await settle()
                assert len(calls) == count - 1
                clock.now += 0.01
                await settle()
                assert len(calls) == count
        finally:
            sweep.cancel()

    in_fork_server(scenario)
