"""``request.connection.stream``: what handlers use of Tornado's IOStream.

Under Tornado's HTTPServer a request's connection holds the client's
`IOStream`, and handlers reach for a little of it: ``closed()`` to see
whether the client is still there before writing (the long-poll chat demo),
``close()`` to drop a client, ``set_close_callback()``.  An ASGI application
has no socket, so the bridge's connection carries this stand-in instead,
answering from what ASGI does say:

- ``closed()`` is true once the server reported ``http.disconnect`` (or a
  send failed because the client had gone), once the response was abandoned
  (e.g. more bytes than its ``Content-Length``), or after ``close()``;
- ``close()`` ends the exchange as far as ASGI can (see
  `_ASGIConnection.close_by_app`): writes fail from then on with
  `StreamClosedError` and ``on_connection_close`` runs on the next loop
  iteration unless the handler finished by then, as under Tornado;
- ``set_close_callback()`` is called (on the next loop iteration, as
  IOStream does) when the stream closes either way;
- ``socket`` and ``fileno()`` raise: the socket is the ASGI server's.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

NO_SOCKET = (
    "an ASGI application has no socket: the connection belongs to the ASGI server, "
    "which reads and writes it (request.connection.stream is the Tornado bridge's "
    "stand-in: closed(), close() and set_close_callback() work)"
)

_ExcInfo = (
    None
    | bool
    | BaseException
    | tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
)


class _Closable(Protocol):
    """What the stream needs of its connection."""

    closed: bool

    def close_by_app(self) -> None: ...


class ASGIStream:
    """The part of `tornado.iostream.IOStream` that makes sense over ASGI."""

    def __init__(self, connection: _Closable, loop: asyncio.AbstractEventLoop) -> None:
        self._connection = connection
        self._loop = loop
        self._close_callback: Callable[[], None] | None = None
        #: Why the stream closed, as IOStream's ``error`` (set by ``close(exc_info)``).
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<ASGIStream {'closed' if self.closed() else 'open'}>"

    def closed(self) -> bool:
        """True once the client is gone or the response was ended early."""
        return self._connection.closed

    def close(self, exc_info: _ExcInfo = False) -> None:
        """End the exchange now (what Tornado's closing of the socket becomes over ASGI)."""
        if self.closed():
            return
        if isinstance(exc_info, tuple):
            self.error = exc_info[1]
        elif isinstance(exc_info, BaseException):
            self.error = exc_info
        elif exc_info:
            self.error = sys.exc_info()[1]
        self._connection.close_by_app()

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """``callback()`` runs once the stream closes (the client leaving, or ``close()``).

        As IOStream's: set on a stream already closed, it is not called.
        """
        self._close_callback = callback

    def signal_closed(self) -> None:
        """Called by the connection when it closes: run the close callback soon."""
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            self._loop.call_soon(callback)

    @property
    def socket(self) -> Any:
        raise AttributeError(f"request.connection.stream.socket: {NO_SOCKET}")

    def fileno(self) -> int:
        raise io.UnsupportedOperation(f"request.connection.stream.fileno(): {NO_SOCKET}")

    def set_nodelay(self, value: bool) -> None:
        """Does nothing: TCP_NODELAY is the server's choice for its socket."""
