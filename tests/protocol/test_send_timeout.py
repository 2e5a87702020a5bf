"""SEND_TIMEOUT with time driven by hand: a client that stops reading is dropped.

A client that reads nothing is played by the transport: ``pause_writing``
(its write buffer is over the high-water mark) and a ``buffered`` size that
does not shrink. The sweep (``Harness.advance``) aborts the connection once
that has lasted SEND_TIMEOUT; a buffer that shrinks is progress and starts
the wait again, as nginx's ``send_timeout`` counts between two writes.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from protocol_harness import GET, Clock, Harness, run, settle, status_of
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from qactuar.asgi.cycle import ClientDisconnected

TIMEOUT = 10.0
CHUNK = b"x" * 65536
MiB = 1024 * 1024


class Streamer:
    """An app that streams CHUNKs until its send() fails; records what it saw."""

    def __init__(self) -> None:
        self.sent = 0
        self.raised: list[BaseException] = []
        self.received: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                self.sent += 1
        except ClientDisconnected as exc:
            self.raised.append(exc)
        self.received.append((await receive())["type"])


def stalled(clock: Clock, **settings: Any) -> tuple[Harness, Any, Any, Streamer]:
    settings.setdefault("SEND_TIMEOUT", TIMEOUT)
    app = Streamer()
    h = Harness(app, clock, **settings)
    conn, transport = h.connect()
    transport.buffered = 4 * MiB  # and it stays there: nothing is read
    conn.pause_writing()
    conn.data_received(GET)
    return h, conn, transport, app


def test_a_client_reading_nothing_is_dropped_after_send_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(clock: Clock) -> None:
        h, conn, transport, app = stalled(clock)
        await settle()
        assert status_of(transport.written) == 200
        sent = app.sent
        assert sent == 0  # the first chunk is written, its send() waits
        await h.advance(TIMEOUT - 0.01)
        assert not transport.closed and app.sent == sent  # send() still waits
        await h.advance(0.01)
        assert transport.aborted  # dropped: close() would wait for the buffer
        await settle()
        assert transport.lost
        # the pending send() returned, the next one raised; receive() says gone
        assert app.sent == sent + 1
        assert [type(exc) for exc in app.raised] == [ClientDisconnected]
        assert app.received == ["http.disconnect"]
        lines = [r for r in caplog.records if "Send timeout" in r.getMessage()]
        assert [(r.name, r.levelno) for r in lines] == [("qt_server", logging.WARNING)]
        assert "127.0.0.1" in lines[0].getMessage() and "10s" in lines[0].getMessage()
        # the client left: no application error
        assert [r for r in caplog.records if r.name == "qt_exception" and r.levelno >= 30] == []
        assert conn not in h.state.stalls and conn not in h.state.connections

    with caplog.at_level(logging.DEBUG):
        run(scenario)


def test_a_client_reading_slowly_is_kept() -> None:
    async def scenario(clock: Clock) -> None:
        h, conn, transport, app = stalled(clock)
        await settle()
        for _ in range(10):  # 75 s in all, never 10 s without progress
            await h.advance(0.75 * TIMEOUT)
            transport.buffered -= 1000  # the client read a little
            await h.advance(0)  # the sweep sees it
        assert not transport.closed
        await h.advance(TIMEOUT - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert transport.aborted

    run(scenario)


def test_writes_while_stalled_are_not_progress() -> None:
    async def scenario(clock: Clock) -> None:
        h, conn, transport, app = stalled(clock)
        await settle()
        await h.advance(0.5 * TIMEOUT)
        transport.buffered += 100  # a ping, a last chunk: written, not read
        await h.advance(0.5 * TIMEOUT - 0.01)
        transport.buffered -= 50  # back under the grown size, above the first
        await h.advance(0.01)
        assert not transport.closed  # it shrank: progress
        await h.advance(TIMEOUT)
        assert transport.aborted

    run(scenario)


def test_the_wait_counts_only_while_writing_is_paused() -> None:
    async def scenario(clock: Clock) -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            await receive()
            await receive()  # until the client goes

        h = Harness(app, clock, SEND_TIMEOUT=TIMEOUT)
        conn, transport = h.connect()
        transport.buffered = 4 * MiB
        conn.data_received(GET)
        await settle()
        for _ in range(3):
            conn.pause_writing()
            await h.advance(TIMEOUT - 0.01)
            conn.resume_writing()  # the buffer went under the low-water mark
            await h.advance(2 * TIMEOUT)  # not paused: no time counts
        assert not transport.closed
        conn.pause_writing()
        await h.advance(TIMEOUT - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert transport.aborted

    run(scenario)


def test_send_timeout_0_waits_forever() -> None:
    async def scenario(clock: Clock) -> None:
        h, conn, transport, app = stalled(clock, SEND_TIMEOUT=0)
        await settle()
        await h.advance(100000)
        assert not transport.closed and len(h.state.stalls) == 0

    run(scenario)


def test_a_websocket_client_reading_nothing_is_dropped_and_the_app_told() -> None:
    async def scenario(clock: Clock) -> None:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            try:
                while True:
                    await send({"type": "websocket.send", "bytes": CHUNK})
            except ClientDisconnected as exc:
                seen.append(type(exc))
            seen.append(await receive())

        h = Harness(app, clock, SEND_TIMEOUT=TIMEOUT, WS_PING_INTERVAL=0)
        conn, transport = h.connect()
        transport.buffered = 4 * MiB
        conn.pause_writing()
        client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/"))
        client.send_request(client.connect())
        conn.data_received(b"".join(client.data_to_send()))
        await settle()
        assert status_of(transport.written) == 101
        await h.advance(TIMEOUT - 0.01)
        assert not transport.closed and seen == []
        await h.advance(0.01)
        assert transport.aborted
        await settle()
        assert seen == [
            ClientDisconnected,
            {"type": "websocket.disconnect", "code": 1006, "reason": ""},
        ]

    run(scenario)


@pytest.mark.parametrize("closing", ["connection: close", "keep-alive timeout"])
def test_a_close_waiting_on_bytes_the_client_never_reads_is_dropped(closing: str) -> None:
    """Under the high-water mark writing never paused, and close() alone waits forever."""

    async def scenario(clock: Clock) -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * 30000})

        h = Harness(app, clock, SEND_TIMEOUT=TIMEOUT, KEEP_ALIVE_TIMEOUT=5.0)
        conn, transport = h.connect()
        transport.buffered = 30000  # under the mark: no pause_writing
        request = GET if closing == "keep-alive timeout" else (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        conn.data_received(request)
        await settle()
        assert status_of(transport.written) == 200
        if closing == "keep-alive timeout":
            assert not transport.closed
            await h.advance(5.0)
        assert transport.closed and not transport.aborted and not transport.lost
        await h.advance(TIMEOUT - 0.01)
        assert not transport.aborted  # close() still waits for the bytes
        await h.advance(0.01)
        assert transport.aborted and transport.lost

    run(scenario)
