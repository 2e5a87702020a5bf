"""REQUEST_TIMEOUT (fork model) with time driven by hand.

The parent's side runs for real: ``dispatch`` relays the request, the relay
asks for a child, ``kill_overdue`` (what the sweep every
CHECK_PROCESS_INTERVAL runs) kills it through its pidfd, its exit is told
and the relay answers the client. Only the zygote is replaced: its "child"
is a ``sleep`` process, and the test decides whether it had begun the
response (by writing the relay's frames into the child's end, as a real
child's app does when it sends).

The promise (README, fork model): the client gets 504 if no byte of the
response was sent, else the connection is closed; a WebSocket is exempt.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import socket
import subprocess
import time
from typing import Any

import pytest
from protocol_harness import GET, Clock, FakeTransport, Harness, header_lines, ok_app, run, settle
from protocol_harness import status_of as status

from qactuar import Config
from qactuar.asgi.cycle import AppLost
from qactuar.models.fork import ForkServer, _Child
from qactuar.models.relay import _LENGTH, _SEND
from qactuar.server.protocol import HTTPProtocol

TIMEOUT = 5.0
WS_HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class SleepZygote:
    """Stands in for the zygote: each child is a ``sleep`` process, said forked at
    once; its exit is told as the zygote tells it (``ForkServer._exited``)."""

    def __init__(self, server: ForkServer) -> None:
        self.server = server
        self.procs: list[subprocess.Popen[bytes]] = []
        #: The child's end of each socketpair, by pid: what its app would write to.
        self.ends: dict[int, socket.socket] = {}

    def kill(self, pid: int) -> None:
        raise AssertionError("a child with a pidfd is killed through it")

    def spawn(self, token: int, end: socket.socket) -> bool:
        proc = subprocess.Popen(["sleep", "60"])
        self.procs.append(proc)
        self.ends[proc.pid] = end
        loop = asyncio.get_running_loop()
        loop.call_soon(self.server._forked, token, proc.pid, os.pidfd_open(proc.pid))
        watch = os.pidfd_open(proc.pid)
        loop.add_reader(watch, self._exited, proc, watch)
        return True

    def _exited(self, proc: subprocess.Popen[bytes], watch: int) -> None:
        asyncio.get_running_loop().remove_reader(watch)
        os.close(watch)
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = -9
        self.ends.pop(proc.pid).close()  # as the child's end closes when it dies
        self.server._exited(self, proc.pid, status, 0.0, 0.0, 0)  # type: ignore[arg-type]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                proc.wait(5)


class SleepForks(ForkServer):
    """A ForkServer whose children are ``sleep`` processes, not forks of the test."""

    def __init__(self) -> None:
        config = Config()
        config.update({"REQUEST_TIMEOUT": TIMEOUT, "LIFESPAN": "off"}, "test")
        super().__init__(ok_app, config)
        self.fake = SleepZygote(self)
        self.procs = self.fake.procs

    def _current_zygote(self) -> Any:
        return self.fake

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
        """Until the parent has been told ``child`` is gone (SIGKILLed: at once)."""
        for _ in range(1000):
            await settle(1)
            if child.pid not in self.children:
                return
            time.sleep(0.01)  # (the loop runs on the test's clock: real time passes here)
        raise AssertionError(f"child {child.pid} still alive 10 s after SIGKILL")

    def sent(self, child: _Child, message: dict[str, Any]) -> None:
        """As if ``child``'s app sent ``message``: the relay's frame on its end."""
        data = marshal.dumps((_SEND, message))
        self.fake.ends[child.pid].sendall(_LENGTH.pack(len(data)) + data)

    def stop(self) -> None:
        self.fake.stop()


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
        server.sent(child, {"type": "http.response.start", "status": 200, "headers": []})
        server.sent(child, {"type": "http.response.body", "body": b"part", "more_body": True})
        for _ in range(100):  # the relay passes them on
            time.sleep(0.01)  # (the loop runs on the test's clock: real time passes here)
            if transport.written:
                break
        server.kill_overdue(child.started + TIMEOUT + 0.01)
        await server.reaped(child)
        await settle()
        # the response began: the parent adds no second one, and closes
        data = bytes(transport.written)
        assert status(data) == 200 and data.count(b"HTTP/1.1 ") == 1, data
        assert data.endswith(b"4\r\npart\r\n") and transport.after_close == b""
        assert transport.closed
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
