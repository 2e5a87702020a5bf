"""BODY_TIMEOUT on one connection, with time driven by hand (nginx's client_body_timeout).

The timeout runs between two reads of a body, and only while the server
reads: an application that leaves its body unread pauses reading, and that
wait is never the client's. The fork model's parent, which reads a body
whole before it forks, times it out the same way, with no child started.
"""

from __future__ import annotations

import asyncio
from typing import Any

from protocol_harness import (
    Clock,
    FakeTransport,
    Harness,
    header_lines,
    ok_app,
    run,
    settle,
    status_of,
)

from qactuar import Config
from qactuar.asgi.cycle import AppLost
from qactuar.models.fork import ForkServer
from qactuar.server.linger import LINGER_IDLE, LINGER_SECONDS
from qactuar.server.protocol import READ_HIGH_WATER, HTTPProtocol

BODY, HEADER = 4.0, 10.0
POST = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"


class Reader:
    """An app that reads the whole body (when let) and answers its size; notes what it got."""

    def __init__(self, start_first: bool = False) -> None:
        self.may_read = asyncio.Event()
        self.may_read.set()
        self.start_first = start_first
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.start_first:  # the response begins before the body is read
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"began", "more_body": True})
        await self.may_read.wait()
        size = 0
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect":
                return
            size += len(message["body"])
            if not message["more_body"]:
                break
        if not self.start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % size})

    @property
    def disconnected(self) -> bool:
        return bool(self.messages) and self.messages[-1]["type"] == "http.disconnect"


def harness(clock: Clock, app: Any, body_timeout: float = BODY) -> Harness:
    return Harness(app, clock, BODY_TIMEOUT=body_timeout, HEADER_TIMEOUT=HEADER)


def test_a_body_that_stops_coming_gets_408_and_a_close_at_the_body_timeout() -> None:
    async def scenario(clock: Clock) -> None:
        app = Reader()
        h = harness(clock, app)
        conn, transport = h.connect()
        conn.data_received(POST % 10 + b"ab")
        await settle()
        await h.advance(BODY - 0.01)
        assert (transport.written, transport.closed) == (b"", False)
        await h.advance(0.01)
        data = transport.take()
        assert status_of(data) == 408, data
        assert b"connection: close" in header_lines(data)
        assert data.endswith(b"Request body timeout\n")
        assert transport.closed
        await settle()
        assert app.disconnected  # the app's receive() said http.disconnect
        assert transport.after_close == b""  # and it wrote nothing more

    run(scenario)


def test_the_body_timeout_runs_between_reads_not_over_the_whole_body() -> None:
    async def scenario(clock: Clock) -> None:
        app = Reader()
        h = harness(clock, app)
        conn, transport = h.connect()
        conn.data_received(POST % 20)
        for _ in range(20):  # a byte every 3.9 s: 78 s in all, far past BODY and HEADER
            await h.advance(BODY - 0.1)
            assert not transport.closed
            conn.data_received(b"b")
            await settle()
        data = transport.take()
        assert status_of(data) == 200 and data.endswith(b"20"), data
        assert not transport.closed

    run(scenario)


def test_an_app_slow_to_read_its_body_is_never_timed_out_but_the_client_after_it_is() -> None:
    async def scenario(clock: Clock) -> None:
        app = Reader()
        app.may_read.clear()
        h = harness(clock, app)
        conn, transport = h.connect()
        total = 4 * READ_HIGH_WATER
        conn.data_received(POST % total)
        pushed, piece = 0, b"p" * 16384
        while transport.reading and pushed < total:  # until reading pauses
            conn.data_received(piece)
            pushed += len(piece)
            await settle(2)
        assert not transport.reading and pushed < total
        await h.advance(BODY * 10)  # the app does not read: not the client's fault
        assert (transport.written, transport.closed) == (b"", False)
        app.may_read.set()
        await settle()
        assert transport.reading  # the app read: the client is waited for again
        await h.advance(BODY - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert status_of(transport.take()) == 408
        await settle()
        assert app.disconnected

    run(scenario)


def test_no_body_timeout_while_a_100_continue_waits_for_the_app() -> None:
    async def scenario(clock: Clock) -> None:
        app = Reader()
        app.may_read.clear()
        h = harness(clock, app)
        conn, transport = h.connect()
        conn.data_received(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                           b"Expect: 100-continue\r\n\r\n")
        await h.advance(BODY * 10)  # the client rightly waits for its 100 Continue
        assert (transport.written, transport.closed) == (b"", False)
        await h.advance(1)
        app.may_read.set()  # the app asks: 100 Continue, and the client's time starts now
        await settle()
        assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        await h.advance(BODY - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert status_of(transport.take()) == 408

    run(scenario)


def test_a_pipelined_body_waiting_behind_a_response_gets_its_time_once_it_starts() -> None:
    # the pipelined POST's head and first bytes came with GET /slow: reading
    # pauses while it waits (pacing.py), so its clock runs only once it starts
    async def scenario(clock: Clock) -> None:
        release = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"] == "/slow":
                await release.wait()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"slow"})
                return
            await Reader()(scope, receive, send)

        h = harness(clock, app)
        conn, transport = h.connect()
        conn.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + POST % 10 + b"ab")
        await settle()
        await h.advance(3 * BODY)  # GET /slow is slow: not the client's wait
        assert not transport.closed
        assert transport.written == b""
        release.set()
        await settle()
        assert status_of(transport.take()) == 200  # /slow's answer; the POST starts
        await h.advance(BODY - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert status_of(transport.take()) == 408  # the POST's own answer
        assert transport.closed

    run(scenario)


def test_after_the_response_began_a_stalled_body_only_closes_the_connection() -> None:
    async def scenario(clock: Clock) -> None:
        app = Reader(start_first=True)
        h = harness(clock, app)
        conn, transport = h.connect()
        conn.data_received(POST % 10 + b"abc")
        await settle()
        began = transport.take()
        assert status_of(began) == 200 and b"began" in began
        await h.advance(BODY)
        assert transport.closed
        assert transport.written == b"" and transport.after_close == b""  # no 408 after a 200
        await settle()
        assert app.disconnected

    run(scenario)


def test_a_body_timeout_of_zero_waits_for_the_body_for_ever() -> None:
    async def scenario(clock: Clock) -> None:
        app = Reader()
        h = harness(clock, app, body_timeout=0)
        conn, transport = h.connect()
        conn.data_received(POST % 3 + b"a")
        for _ in range(60):
            await h.advance(60)
        assert (transport.written, transport.closed) == (b"", False)
        conn.data_received(b"bc")
        await settle()
        assert transport.take().endswith(b"3")

    run(scenario)


def test_a_body_timeout_shorter_than_a_lingering_close_does_not_cut_it() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock, ok_app, body_timeout=LINGER_IDLE)  # the app never reads
        conn, transport = h.connect()
        conn.data_received(POST % 100000 + b"u" * 1000)
        await settle()
        assert status_of(transport.take()) == 200 and transport.eof_written  # lingering
        elapsed, step = 0.0, LINGER_IDLE / 2
        while elapsed + step < LINGER_SECONDS:  # the client still sends: it is read
            transport.protocol.data_received(b"u" * 1000)
            await h.advance(step)
            elapsed += step
            assert not transport.closed, elapsed
        await h.advance(LINGER_SECONDS - elapsed)
        assert transport.closed and transport.written == b""

    run(scenario)


class NoForks(ForkServer):
    """The fork model's parent on the test's clock; forking fails the test."""

    def __init__(self, clock: Clock, **settings: Any) -> None:
        config = Config()
        config.update({"LIFESPAN": "off", "BODY_TIMEOUT": BODY, **settings}, "test")
        super().__init__(Reader(), config)
        self.state.monotonic = clock
        self.state.tick()
        self.forked = 0

    def _current_zygote(self) -> Any:
        return self  # (never a real zygote: _start_child below never asks one)

    def _start_child(self, zygote: Any, job: Any) -> None:
        self.forked += 1
        job.link.set_exception(AppLost(503, "Service Unavailable"))  # as a failed fork

    def connect(self) -> tuple[HTTPProtocol, FakeTransport]:
        conn = HTTPProtocol(self.state)
        transport = FakeTransport(conn)
        conn.connection_made(transport)
        return conn, transport

    async def advance(self, clock: Clock, seconds: float) -> None:
        clock.now += seconds
        self.state.tick()
        self.state.sweep()
        await settle()


def test_fork_a_stalled_body_is_timed_out_by_the_parent_with_no_child_started() -> None:
    async def scenario(clock: Clock) -> None:
        server = NoForks(clock, BODY_BUFFER_BYTES=4)  # spooled to a file past 4 bytes
        conn, transport = server.connect()
        conn.data_received(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                           b"Expect: 100-continue\r\n\r\n")
        await settle()
        # the parent reads the body now: it says so itself (as nginx does)
        assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.data_received(b"x" * 10)
        await settle()
        [cycle] = server.buffering
        assert cycle.spool is not None
        fd = cycle.spool.fileno()
        assert fd >= 0 and fd in server.child_closes  # no other child may keep it
        await server.advance(clock, BODY - 0.01)
        assert not transport.closed and server.forked == 0
        await server.advance(clock, 0.01)
        data = transport.take()
        assert status_of(data) == 408, data
        assert transport.closed and server.forked == 0 and not server.buffering
        assert fd not in server.child_closes
        assert cycle.spool.fileno() == -1  # the parent closed (so removed) its file

    run(scenario)


def test_fork_a_body_arriving_in_time_is_read_whole_before_the_fork() -> None:
    async def scenario(clock: Clock) -> None:
        server = NoForks(clock)
        conn, transport = server.connect()
        conn.data_received(POST % 6 + b"ab")
        await settle()
        for piece in (b"cd", b"ef"):
            await server.advance(clock, BODY - 0.1)
            assert server.forked == 0 and transport.reading
            conn.data_received(piece)
        await settle()
        assert server.forked == 1 and not server.buffering
        assert status_of(transport.take()) == 503  # the test's fork "failed"

    run(scenario)
