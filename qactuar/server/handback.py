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
from typing import TYPE_CHECKING, cast

from ..http import ProtocolError, RequestParser
from . import pacing

if TYPE_CHECKING:
    from ..asgi.cycle import HTTPCycle
    from .protocol import HTTPProtocol
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
        reads_nothing: bool

        def close(self) -> None: ...

        def resume_reading(self) -> None: ...

        def pause_reading(self) -> None: ...

        def _send_error(self) -> None: ...

        def _start(self, cycle: HTTPCycle) -> None: ...

    def reattach(self, keep_alive: bool, served: int = 0) -> None:
        """Take the connection back after a fork child served its requests.

        The child read nothing from the socket: it served the current
        request and the pipelined ones that were complete when it was
        forked, and stopped before the first that was not. What is left here
        is this process's own state as it was at the fork (the parser, a
        pipelined request whose body is still coming, the unparsed rest of
        a read), so parsing goes on from there: a later request waits on its
        client here, never in a child.
        """
        self.cycle = None
        for _ in range(min(served, len(self.pipeline))):
            self.pipeline.popleft()  # the child served it (complete at the fork)
        transport = self.transport
        assert transport is not None
        if not keep_alive or self._closing:
            self.pipeline.clear()
            self._parsing = None
            self._closing = True
            transport.close()
            return
        stopping = self.state.shutting_down
        if self.pipeline:  # its body is read here (the fork model's intake)
            cycle = self.pipeline.popleft()
            if stopping:
                cycle.response.keep_alive = False
            self._start(cycle)
            pacing.resume(cast("HTTPProtocol", self))  # its body may be in the rest
            return
        if self._unparsed:
            # parsed on the next turn; idle until a request begins in it (the
            # rest may hold none: a stray CRLF), then feed() sets its deadline
            self.deadline = self.state.clock + self.state.keep_alive_timeout
            pacing.resume(cast("HTTPProtocol", self))
            return
        self.resume_reading()
        if not self.parser.idle:  # a head began before the fork: HEADER_TIMEOUT from now
            self.deadline = self.state.clock + self.state.header_timeout
        elif stopping:
            # as the graceful stop treats idle connections: a request already
            # on its way is answered (connection: close), silence is closed
            asyncio.get_running_loop().call_later(IDLE_GRACE, self.close_if_idle)
        else:
            self.deadline = self.state.clock + self.state.keep_alive_timeout

    def _hands_back(self) -> bool:
        """A fork child (``on_idle`` set): True, once ``on_idle`` is told, if it is done.

        A child serving HTTP (``reads_nothing``) is done at the first request
        that is not complete in what it was given: it never waits for more.
        """
        if not self.reads_nothing or (self.pipeline and self.pipeline[0].body_complete):
            return False
        self.pause_reading()
        assert self.state.on_idle is not None
        self.state.on_idle(cast("HTTPProtocol", self))
        return True

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
