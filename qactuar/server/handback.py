"""A connection whose requests another process served, handed back (the fork model).

Mixed into ``HTTPProtocol``: the fork model's parent lets a child serve a
connection's requests and, once the child has exited, either takes the
connection back for the next request (``reattach``) or answers for the
child that could not (``fail``: 502, 503, 504, or a close when the child
had begun its response). ``fail`` also ends a connection whose request
body stopped coming (``body.py``) in every model.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from ..http import ProtocolError, RequestParser

if TYPE_CHECKING:
    from ..asgi.cycle import HTTPCycle
    from .server import ServerState

__all__ = ["IDLE_GRACE", "HandBack"]

#: On a graceful stop, an idle keep-alive connection is closed only once it
#: has been quiet this long: under load its next request is usually on its way.
IDLE_GRACE = 0.25


class HandBack:
    if not TYPE_CHECKING:
        __slots__ = ()  # (HTTPProtocol's slots; mypy checks against the annotations)
    else:  # HTTPProtocol's, used here
        state: ServerState
        transport: asyncio.Transport | None
        parser: RequestParser
        cycle: HTTPCycle | None
        pipeline: deque[HTTPCycle]
        deadline: float
        _parsing: HTTPCycle | None
        _unparsed: bytes
        _closing: bool
        _error: ProtocolError | None

        def close(self) -> None: ...

        def resume_reading(self) -> None: ...

        def _send_error(self) -> None: ...

    def reattach(self, keep_alive: bool) -> None:
        """Take the connection back after another process served its request.

        The other process consumed the rest of the request from the socket
        and stopped between requests, so parsing starts afresh.
        """
        self.cycle = None
        self.pipeline.clear()
        self._parsing = None
        self._unparsed = b""  # the child parsed it
        self.parser = RequestParser(self.state.limits)
        transport = self.transport
        assert transport is not None
        if not keep_alive or self._closing:
            self._closing = True
            transport.close()
            return
        self.resume_reading()
        if self.state.shutting_down:
            # as the graceful stop treats idle connections: a request already
            # on its way is answered (connection: close), silence is closed
            asyncio.get_running_loop().call_later(IDLE_GRACE, self.close_if_idle)
        else:
            self.deadline = self.state.clock + self.state.keep_alive_timeout

    def close_if_idle(self) -> None:
        if self.cycle is None and not self.pipeline and self.parser.idle:
            self.close()

    def fail(self, status: int, reason: str) -> None:
        """Answer ``status`` (if nothing of a response was sent) and close."""
        self.cycle = None
        self.pipeline.clear()
        self._error = ProtocolError(status, reason)
        if status:
            self._send_error()
        else:
            assert self.transport is not None
            self._closing = True
            self.transport.close()
