"""A response streamed in many small messages: written a turn of the loop at a time.

Each ``http.response.body`` with ``more_body`` the app sends without waiting
in between joins one write at the end of the loop's turn (or at 64 KiB), so
a 1,000-chunk response costs a few system calls, not 1,000; a piece is never
held past the turn it was sent in, so a stream that waits between pieces
(server-sent events) gets each piece out before its wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

from protocol_harness import GET, Clock, FakeTransport, Harness, run, settle, status_of

from qactuar.server.protocol import HELD_MAX


class Counting(FakeTransport):
    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__(protocol)
        self.writes: list[int] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(len(data))
        super().write(data)


def unchunk(body: bytes) -> list[bytes]:
    pieces = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if not size:
            return pieces
        pieces.append(body[:size])
        body = body[size + 2 :]


def test_pieces_sent_in_a_row_are_written_together() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(1000):
            await send({"type": "http.response.body", "body": b"%03d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def scenario(clock: Clock) -> None:
        conn, transport = Harness(app, clock).connect(transport=Counting)
        conn.data_received(GET)
        await settle()
        data = bytes(transport.written)
        assert status_of(data) == 200
        body = data.split(b"\r\n\r\n", 1)[1]
        assert unchunk(body) == [b"%03d;" % i for i in range(1000)]
        assert body.endswith(b"0\r\n\r\n")
        # (1,000 pieces of 10 bytes framed: ~12 KiB, under HELD_MAX: one write,
        # plus the last chunk's)
        assert len(transport.writes) <= 3, transport.writes

    run(scenario)


def test_a_piece_is_written_before_the_app_waits() -> None:
    sent = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"event: one\n\n", "more_body": True})
        sent.set()
        await asyncio.sleep(3600)  # (cancelled by the test's end)

    async def scenario(clock: Clock) -> None:
        conn, transport = Harness(app, clock).connect(transport=Counting)
        conn.data_received(GET)
        await sent.wait()
        await settle(2)
        assert b"event: one\n\n" in bytes(transport.written)

    run(scenario)


def test_held_pieces_are_written_at_once_past_held_max() -> None:
    piece = b"x" * 1000
    count = 3 * HELD_MAX // len(piece)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(count):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def scenario(clock: Clock) -> None:
        conn, transport = Harness(app, clock).connect(transport=Counting)
        conn.data_received(GET)
        await settle()
        assert max(transport.writes) <= HELD_MAX + 2 * len(piece)  # none held past the bound
        assert len(transport.writes) >= 3
        body = bytes(transport.written).split(b"\r\n\r\n", 1)[1]
        assert b"".join(unchunk(body)) == piece * count

    run(scenario)
