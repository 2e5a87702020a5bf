"""Lingering close (server/linger.py) with time driven by hand.

A 413 answered before the body is in hands the connection to ``_Linger``:
the answer is flushed and the write side shut, then what the client still
sends is read and dropped until it has been silent ``LINGER_IDLE``, for at
most ``LINGER_SECONDS`` or ``LINGER_BYTES``.
"""

from __future__ import annotations

from protocol_harness import Clock, FakeTransport, Harness, ok_app, run, status_of

from qactuar.server.linger import LINGER_BYTES, LINGER_IDLE, LINGER_SECONDS

UPLOAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"u" * 1000


async def refused_upload(clock: Clock) -> tuple[Harness, FakeTransport]:
    h = Harness(ok_app, clock, MAX_BODY_BYTES=100)
    conn, transport = h.connect()
    conn.data_received(UPLOAD)
    assert status_of(transport.take()) == 413
    assert transport.eof_written  # the client sees the answer end
    assert transport.reading and not transport.closed
    return h, transport


def test_a_silent_client_is_closed_after_linger_idle() -> None:
    async def scenario(clock: Clock) -> None:
        h, transport = await refused_upload(clock)
        await h.advance(LINGER_IDLE - 0.01)
        assert not transport.closed
        await h.advance(0.01)
        assert transport.closed and transport.lost
        assert transport.written == b""

    run(scenario)


def test_a_client_still_sending_is_read_until_linger_seconds() -> None:
    async def scenario(clock: Clock) -> None:
        h, transport = await refused_upload(clock)
        step = LINGER_IDLE / 2
        elapsed = 0.0
        while elapsed + step < LINGER_SECONDS:
            transport.protocol.data_received(b"u" * 1000)  # thrown away
            await h.advance(step)
            elapsed += step
            assert not transport.closed, elapsed
        transport.protocol.data_received(b"u" * 1000)
        await h.advance(LINGER_SECONDS - elapsed)
        assert transport.closed  # however busy the client still is
        assert transport.written == b""

    run(scenario)


def test_a_client_sending_more_than_linger_bytes_is_closed_at_once() -> None:
    async def scenario(clock: Clock) -> None:
        h, transport = await refused_upload(clock)
        chunk = b"u" * 65536
        for _ in range(LINGER_BYTES // len(chunk) - 1):
            transport.protocol.data_received(chunk)
        assert not transport.closed
        transport.protocol.data_received(chunk)
        assert transport.closed

    run(scenario)
