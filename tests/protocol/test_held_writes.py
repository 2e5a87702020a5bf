"""Pieces held by ``write_soon`` against the connection's own writes.

An error's answer to a pipelined request, and a lingering close's EOF, come
after a response whose held pieces must go first (found by a cold review:
each of these failed before its fix).
"""

from __future__ import annotations

import asyncio
from typing import Any

from protocol_harness import GET, Clock, FakeTransport, Harness, run, settle, status_of


class StrictTransport(FakeTransport):
    """As asyncio's socket transport: write() after write_eof() raises."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        super().write(data)


async def streamed_with_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # a Content-Length response sent in pieces, ended by an empty last piece
    # (Starlette's FileResponse when the file is a multiple of its chunk size)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b"hello", "more_body": True})
    await send({"type": "http.response.body", "body": b"world", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_response_before_a_pipelined_bad_request_is_not_replaced_by_its_400() -> None:
    async def scenario(clock: Clock) -> None:
        conn, transport = Harness(streamed_with_length, clock).connect(transport=StrictTransport)
        conn.data_received(GET + b"BAD\x01 / HTTP/1.1\r\n\r\n")
        await settle()
        data = bytes(transport.written)
        assert status_of(data) == 200, data  # the GET's answer first
        assert b"helloworld" in data
        assert data.index(b"helloworld") < data.index(b"HTTP/1.1 400")

    run(scenario)


def test_response_to_an_unread_upload_is_not_lost_to_the_lingering_close() -> None:
    async def scenario(clock: Clock) -> None:
        conn, transport = Harness(streamed_with_length, clock).connect(transport=StrictTransport)
        # the app answers without reading a body still on its way
        conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
        loop = asyncio.get_running_loop()
        errors: list[Any] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        await settle()
        data = bytes(transport.written)
        assert not errors, errors
        assert status_of(data) == 200 and data.endswith(b"helloworld"), data

    run(scenario)


def test_head_of_a_streamed_response_before_the_400() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def scenario(clock: Clock) -> None:
        conn, transport = Harness(app, clock).connect(transport=StrictTransport)
        conn.data_received(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + b"BAD\x01 / HTTP/1.1\r\n\r\n")
        await settle()
        data = bytes(transport.written)
        assert status_of(data) == 200, data

    run(scenario)
