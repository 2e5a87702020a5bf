"""SEND_TIMEOUT: a client that stops reading what the server writes is dropped.

As nginx's ``send_timeout``, the time counts between two moves of a write,
not for a whole response: a connection is *stalled* from the moment its
transport's write buffer goes over the high-water mark (``pause_writing``:
the application's ``send()`` waits in ``drain()``, a pipelined request waits
its turn) until it is back under it (``resume_writing``). Every sweep looks
at the stalled ones only: bytes still to be taken by the client (the
transport's buffer and the kernel's send queue, ``_buffered``) that shrank
since the last look are progress (the client reads, however slowly) and the
time starts again; if they have not shrunk for ``SEND_TIMEOUT`` seconds the
client reads nothing, and the connection is aborted. (Bytes the application
writes while stalled can hide a client's slow reading: such a connection
counts as stalled.)

The abort is the client leaving, not an application error: the cycle is
told as of any lost connection (the pending ``send()`` returns, the next one
raises ``ClientDisconnected``, ``receive()`` says ``http.disconnect``; a
WebSocket application gets ``websocket.disconnect`` 1006), and one line is
logged (a warning) with the client's address. A connection the server
closes with bytes still buffered (``HTTPProtocol.close``: after a
``Connection: close`` response, at the keep-alive timeout) counts as stalled
too, however few they are: ``close()`` alone would wait for them forever.

Like the other timeouts this is no timer: the sweep (``ServerState.sweep``,
on the coarse clock) does it, in every model's server loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import termios
from typing import TYPE_CHECKING

from ..logs import printable

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

__all__ = ["Stalls"]

logger = logging.getLogger("qt_server")

_OUTQ_FORMAT = struct.Struct("i")
_OUTQ = bytes(_OUTQ_FORMAT.size)


class Stalls:
    """The connections whose writing is paused: when each times out, what it had buffered."""

    __slots__ = ("timeout", "_stalled")

    def __init__(self, timeout: float) -> None:
        #: SEND_TIMEOUT in seconds; 0: nothing is watched.
        self.timeout = timeout
        self._stalled: dict[HTTPProtocol, tuple[float, int]] = {}

    def __len__(self) -> int:
        return len(self._stalled)

    def __contains__(self, conn: object) -> bool:
        return conn in self._stalled

    def paused(self, conn: HTTPProtocol, now: float) -> None:
        """``conn``'s writing paused at ``now``."""
        if self.timeout:
            self._stalled[conn] = (now + self.timeout, _buffered(conn))

    def closing(self, transport: asyncio.Transport) -> None:
        """A connection closes with bytes still to send: they count as a stall too.

        ``close()`` waits for the write buffer to empty, forever if the
        client reads nothing; a buffer under the high-water mark never paused
        writing. With the mark at 0 the transport pauses it now (if anything
        is left), so the sweep drops the connection after ``timeout``.
        """
        if self.timeout and transport.get_write_buffer_size():
            transport.set_write_buffer_limits(0)

    def resumed(self, conn: HTTPProtocol) -> None:
        """``conn``'s writing resumed, or the connection is gone."""
        self._stalled.pop(conn, None)

    def sweep(self, now: float) -> None:
        """Abort every stalled connection that has made no progress for ``timeout``."""
        if not self._stalled:
            return
        stalled = self._stalled
        for conn, (deadline, before) in list(stalled.items()):
            buffered = _buffered(conn)
            if buffered < before:
                # the client read something: the wait starts again
                stalled[conn] = (now + self.timeout, buffered)
            elif now >= deadline:
                del stalled[conn]
                _time_out(conn, self.timeout)
            elif buffered > before:
                # written to while stalled (a ping, a last chunk): not progress
                stalled[conn] = (deadline, buffered)


def _time_out(conn: HTTPProtocol, timeout: float) -> None:
    transport = conn.transport
    if transport is None:
        return
    # a warning: visible in every model (a prefork worker shows no core info line)
    logger.warning(
        "Send timeout: %s read nothing for %gs; connection dropped",
        printable(str(conn.client)),
        timeout,
    )
    # abort, not close: close would wait for the buffer to reach the client
    transport.abort()


def _buffered(conn: HTTPProtocol) -> int:
    """Bytes written and not yet taken by the client: the transport's, and the kernel's.

    The kernel's send queue (``TIOCOUTQ``: unsent and unacknowledged) holds
    megabytes, and a transport's own buffer shrinks only when much of it has
    gone: a client reading slowly but steadily empties the kernel's first.
    """
    transport = conn.transport
    if transport is None:
        return 0
    try:
        pending = transport.get_write_buffer_size()
        sock = transport.get_extra_info("socket")
    except (AttributeError, RuntimeError):  # a transport already torn down
        return 0
    if sock is not None:
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, _OUTQ)
            pending += _OUTQ_FORMAT.unpack(queued)[0]
        except (OSError, ValueError):  # not a TCP socket (Unix), or closed
            pass
    return pending
