"""Lingering close: end a connection whose client is still sending, without a reset.

When the server answers before the request body is in (LIMIT_CONCURRENCY's
503, MAX_BODY_BYTES's 413, an app that answers without reading), closing at
once leaves the body's rest unread, and the kernel answers unread data with
a TCP reset, which can destroy the response still on its way and fails the
client's upload (curl: "Connection reset by peer") before it reads a byte.

So, as nginx's lingering close does, the connection is handed to ``_Linger``:
the write side is shut down once the response is flushed (the client sees
the end of the answer; not over TLS, whose transport cannot), and what the
client still sends is read and thrown away until it closes, or for at most
``LINGER_SECONDS``, ``LINGER_BYTES``, or ``LINGER_IDLE`` without a byte,
whichever comes first. Then the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

__all__ = ["linger"]

#: Longest a connection lingers, whatever the client does.
LINGER_SECONDS = 2.0
#: Most bytes read and thrown away.
LINGER_BYTES = 4 * 1024 * 1024
#: A client silent this long is done sending.
LINGER_IDLE = 0.5


class _Linger(asyncio.Protocol):
    """Reads and drops the client's bytes; the connection's own protocol sees it end."""

    def __init__(self, conn: HTTPProtocol, transport: asyncio.Transport) -> None:
        self.conn = conn
        self.transport = transport
        self.left = LINGER_BYTES
        loop = asyncio.get_running_loop()
        self.heard = loop.time()
        self.end = self.heard + LINGER_SECONDS
        self.timer: asyncio.TimerHandle | None = loop.call_later(LINGER_IDLE, self._check)

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left <= 0:
            self.transport.close()
        else:
            self.heard = asyncio.get_running_loop().time()

    def eof_received(self) -> bool | None:
        return None  # the client is done: the transport closes

    def _check(self) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        now = asyncio.get_running_loop().time()
        if now >= self.end or now - self.heard >= LINGER_IDLE:
            self.transport.close()
            return
        wait = min(self.heard + LINGER_IDLE, self.end) - now
        self.timer = asyncio.get_running_loop().call_later(wait, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.conn.connection_lost(exc)


def linger(conn: HTTPProtocol, transport: asyncio.Transport) -> None:
    """Close ``transport`` (``conn``'s) once the client has stopped sending; see above."""
    transport.set_protocol(_Linger(conn, transport))
    if transport.can_write_eof():
        transport.write_eof()  # after what is buffered: the answer is complete
    transport.resume_reading()
