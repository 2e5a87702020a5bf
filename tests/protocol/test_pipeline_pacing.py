"""Pipelined requests are parsed only as fast as they are answered.

One read of 256 KiB of minimal GETs is some 9,700 requests. A client that
sends it and reads nothing (``pause_writing``) must cost the connection a
small multiple of those bytes (it cost 16-21 times them when every request
in the read was parsed into a queued cycle at once), and once it reads,
every answer comes, in order.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

from protocol_harness import Clock, Harness, run, settle

READ = 256 * 1024
MINIMAL_GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def path_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers each request with its path."""
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def test_a_read_of_pipelined_gets_not_read_back_holds_under_4x_its_bytes() -> None:
    async def scenario(clock: Clock) -> None:
        h = Harness(path_app, clock)
        conn, transport = h.connect()
        conn.pause_writing()  # the client reads nothing
        await settle()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            data = MINIMAL_GET * (READ // len(MINIMAL_GET))
            conn.data_received(data)  # what one read of the socket gives
            await settle(50)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert held < 4 * len(data), f"{held} bytes held for {len(data)} sent"
        assert not transport.reading
        assert len(conn.pipeline) <= 1
        assert transport.written.count(b"HTTP/1.1 200") == 1  # the first, then it waits

    run(scenario)


def test_every_pipelined_answer_comes_in_order_once_the_client_reads() -> None:
    async def scenario(clock: Clock) -> None:
        h = Harness(path_app, clock)
        conn, transport = h.connect()
        count = 3000
        data = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(count))
        conn.pause_writing()
        for at in range(0, len(data), READ // 8):  # reads of 32 KiB while it reads
            assert transport.reading
            conn.data_received(data[at : at + READ // 8])
            await settle(5)
            assert not transport.reading and len(conn.pipeline) <= 1
            conn.resume_writing()  # the client reads
            for _ in range(count * 10):
                await asyncio.sleep(0)
                if transport.reading:
                    break
            conn.pause_writing()
        conn.resume_writing()
        await settle()
        bodies = [
            part.rpartition(b"\r\n\r\n")[2]
            for part in bytes(transport.written).split(b"HTTP/1.1 200 OK\r\n")[1:]
        ]
        assert bodies == [b"/%d" % i for i in range(count)]
        assert not transport.closed and transport.reading

    run(scenario)
