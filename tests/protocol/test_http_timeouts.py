"""HEADER_TIMEOUT and KEEP_ALIVE_TIMEOUT on one connection, with time driven by hand.

The two timeouts differ (10 s and 3 s) so that each test shows which one
applied. The server's sweep is run by ``Harness.advance`` right after the
clock moves, so a deadline is met exactly at its second: the end-to-end
tests (tests/test_limits.py) add only that the real sweep runs at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from protocol_harness import GET, Clock, Harness, header_lines, ok_app, run, settle, status_of

HEADER, KEEP_ALIVE = 10.0, 3.0


def harness(clock: Clock, app: Any = ok_app) -> Harness:
    return Harness(app, clock, HEADER_TIMEOUT=HEADER, KEEP_ALIVE_TIMEOUT=KEEP_ALIVE)


def test_a_client_that_sends_nothing_is_closed_at_the_header_timeout() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        await h.advance(HEADER - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert transport.closed and transport.lost
        assert transport.written == b""  # no request, so no response
        assert conn not in h.state.connections

    run(scenario)


def test_half_a_head_gets_408_with_connection_close_at_the_header_timeout() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
        await h.advance(HEADER - 0.01)
        assert (transport.written, transport.closed) == (b"", False)
        await h.advance(0.01)
        data = transport.take()
        assert status_of(data) == 408
        assert b"connection: close" in header_lines(data)
        assert transport.closed and transport.after_close == b""

    run(scenario)


def test_a_head_trickling_in_is_timed_from_its_first_byte_not_its_last() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        await h.advance(5)  # connected, silent: 5 s of the header timeout left
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
        for second in range(int(HEADER)):
            conn.data_received(head[second : second + 1])  # a byte a second
            await h.advance(0.99 if second == HEADER - 1 else 1)
        # 9.99 s after the head's first byte, 15 s after connecting: still waiting
        assert (transport.written, transport.closed) == (b"", False)
        await h.advance(0.01)
        assert status_of(transport.take()) == 408
        assert transport.closed

    run(scenario)


def test_an_idle_keep_alive_connection_is_closed_at_the_keep_alive_timeout() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        conn.data_received(GET)
        await settle()
        assert status_of(transport.take()) == 200
        await h.advance(KEEP_ALIVE - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert transport.closed and transport.lost
        assert transport.written == b""  # closed between requests, nothing said

    run(scenario)


def test_requests_within_the_keep_alive_timeout_keep_the_connection_for_long() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        for _ in range(10):  # 29 s in all, far past both timeouts
            await h.advance(KEEP_ALIVE - 0.1)
            conn.data_received(GET)
            await settle()
            assert status_of(transport.take()) == 200
            assert not transport.closed
        await h.advance(KEEP_ALIVE)
        assert transport.closed

    run(scenario)


def test_a_head_begun_on_a_kept_alive_connection_gets_the_header_timeout() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        conn.data_received(GET)
        await settle()
        assert status_of(transport.take()) == 200
        await h.advance(1)
        conn.data_received(b"GET /second HTTP/1.1\r\nHost: x\r\n")
        # past the keep-alive deadline: a head has begun, the header timeout governs
        await h.advance(HEADER - 0.01)
        assert (transport.written, transport.closed) == (b"", False)
        await h.advance(0.01)
        data = transport.take()
        assert status_of(data) == 408
        assert b"connection: close" in header_lines(data)
        assert transport.closed

    run(scenario)


def test_an_app_slower_than_both_timeouts_is_not_cut() -> None:
    async def scenario(clock: Clock) -> None:
        release = asyncio.Event()

        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await release.wait()
            await ok_app(scope, receive, send)

        h = harness(clock, slow)
        conn, transport = h.connect()
        conn.data_received(GET)
        for _ in range(60):  # 10 minutes of sweeps while the app works
            await h.advance(10)
        assert (transport.written, transport.closed) == (b"", False)
        release.set()
        await settle()
        assert status_of(transport.take()) == 200
        # the keep-alive timeout runs from the response's end
        await h.advance(KEEP_ALIVE - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert transport.closed

    run(scenario)


def test_a_body_arriving_slowly_is_not_cut_by_the_header_timeout() -> None:
    async def scenario(clock: Clock) -> None:
        async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        h = harness(clock, echo)
        conn, transport = h.connect()
        conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        # the head is in: the header timeout is over (BODY_TIMEOUT, 30 s: test_body_timeout.py)
        await h.advance(HEADER * 2)
        assert not transport.closed
        conn.data_received(b"cd")
        await settle()
        data = transport.take()
        assert status_of(data) == 200 and data.endswith(b"abcd")

    run(scenario)


def test_a_proxy_that_never_finishes_its_proxy_header_is_closed_unanswered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(clock: Clock) -> None:
        h = Harness(ok_app, clock, HEADER_TIMEOUT=HEADER, KEEP_ALIVE_TIMEOUT=KEEP_ALIVE,
                    PROXY_PROTOCOL=True, FORWARDED_ALLOW_IPS=["127.0.0.1"])
        conn, transport = h.connect()
        conn.data_received(b"PROXY TCP4 192.0.2.1 ")
        await h.advance(HEADER - 0.01)
        assert not transport.closed
        with caplog.at_level(logging.INFO, "qt_server"):
            await h.advance(0.01)
        assert transport.closed and transport.written == b""  # not known to speak HTTP
        assert "no header in time; closed" in caplog.text

    run(scenario)


def test_a_head_begun_behind_a_request_keeps_the_header_timeout_after_its_answer() -> None:
    async def scenario(clock: Clock) -> None:
        h = harness(clock)
        conn, transport = h.connect()
        conn.data_received(GET + b"GET / HTTP/1.1\r\nHo")  # a request, then half a head
        await settle()
        assert status_of(transport.take()) == 200
        # not the keep-alive timeout (3 s): the head's first byte came at 0 s
        await h.advance(HEADER - 0.01)
        assert (transport.written, transport.closed) == (b"", False)
        await h.advance(0.01)
        assert status_of(transport.take()) == 408
        assert transport.closed

    run(scenario)
