"""Back-pressure both ways on one connection, step by step instead of by waiting.

Writing: once the transport says it is over its high-water mark
(``pause_writing``), the application's ``send()`` waits until it is under
(``resume_writing``). Reading: while the application leaves more than
``READ_HIGH_WATER`` of the body unread, the connection stops reading.
"""

from __future__ import annotations

from typing import Any

from protocol_harness import Clock, Harness, run, settle, status_of

from qactuar.server.protocol import READ_HIGH_WATER

CHUNK = b"x" * 65536


def test_send_stops_at_pause_writing_and_goes_on_at_resume_writing() -> None:
    async def scenario(clock: Clock) -> None:
        sent = [0]
        finished = [False]

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(10):
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                sent[0] += 1
            await send({"type": "http.response.body", "body": b""})
            finished[0] = True

        h = Harness(app, clock)
        conn, transport = h.connect()
        conn.pause_writing()  # the client reads nothing: the buffer is full
        conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await settle(100)
        assert sent[0] == 0  # the first chunk was written, its send() waits
        assert len(transport.written) < 2 * len(CHUNK)
        for count in range(1, 10):
            conn.resume_writing()
            conn.pause_writing()  # the next chunk fills the buffer again
            await settle(100)
            assert sent[0] == count
        conn.resume_writing()
        await settle()
        assert finished[0]
        data = transport.take()
        assert status_of(data) == 200 and data.endswith(b"0\r\n\r\n")
        assert data.count(CHUNK) == 10

    run(scenario)


def test_reading_pauses_while_the_app_leaves_the_body_unread() -> None:
    async def scenario(clock: Clock) -> None:
        got: list[int] = []
        may_read = [False]

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            while not may_read[0]:
                await settle(1)
            size = 0
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            got.append(size)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"%d" % size})

        total = 8 * READ_HIGH_WATER
        h = Harness(app, clock)
        conn, transport = h.connect()
        conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        pushed = 0
        piece = b"b" * 16384
        while transport.reading and pushed < total:  # as an event loop feeds a reading transport
            conn.data_received(piece)
            pushed += len(piece)
            await settle(2)
        assert not transport.reading
        assert READ_HIGH_WATER < pushed <= READ_HIGH_WATER + len(piece)
        may_read[0] = True
        for _ in range(1000):
            await settle(2)
            if transport.reading and pushed < total:
                conn.data_received(piece)
                pushed += len(piece)
            if got:
                break
        assert got == [total]
        assert status_of(transport.take()) == 200

    run(scenario)
