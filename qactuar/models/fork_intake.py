"""What the fork model's parent settles for a request before any child starts.

- **The body is read here, whole.** A request head that announces a body
  (``Content-Length`` or chunked) does not fork at once: the parent goes on
  reading the body into a ``BodySpool`` (memory up to ``BODY_BUFFER_BYTES``,
  the rest in an unlinked temporary file) and forks only once it is
  complete, so a client that stalls mid-body costs the parent a descriptor
  and its buffer, never a child (as nginx buffers a body before it passes
  the request on). ``MAX_BODY_BYTES`` (413) and ``BODY_TIMEOUT`` (408) apply
  here, in the parent, with the same code as in every model
  (``HTTPProtocol``). ``Expect: 100-continue`` is answered as the parent
  starts reading such a body, unless the whole body came with the head.
  The parent's cycle reads the spool as the relay passes the body on to the
  child. A body that never completes ends the request with no child at all.
- **WebSocket children are capped** (``MAX_WEBSOCKETS``, by default half of
  ``MAX_PROCESSES``): an idle WebSocket holds its child for its whole life,
  so over the cap a handshake is refused at once with ``503`` and
  ``Retry-After`` (never queued: a queued handshake would wait for another
  WebSocket to close, which may be never).

The temporary file's descriptor is listed in ``child_closes`` while the
parent holds it, so that a zygote forked meanwhile closes it; the parent
closes it (and drops the memory) once the request's relay has ended.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..asgi.cycle import HTTPCycle
from ..asgi.spool import BodySpool
from ..http import error_response
from ..server.gate import UNAVAILABLE_HEADERS
from ..server.protocol import HTTPProtocol
from ..websocket import WebSocketSession

if TYPE_CHECKING:
    from .fork import ForkServer

__all__ = ["buffer_body", "drop_spool", "over_websocket_cap"]

logger = logging.getLogger("qt_server")

_WS_FULL = (
    "Service Unavailable: the server is at its WebSocket limit (MAX_WEBSOCKETS), retry later"
)


def buffer_body(server: ForkServer, cycle: HTTPCycle, then: Callable[[HTTPCycle], None]) -> None:
    """Read ``cycle``'s body into a spool here; ``then(cycle)`` once it is complete."""
    conn = cycle.conn
    assert isinstance(conn, HTTPProtocol)

    def listed(fd: int, opened: bool) -> None:
        if opened:
            bisect.insort(server.child_closes, fd)
        elif fd in server.child_closes:
            server.child_closes.remove(fd)

    def done(complete: bool) -> None:
        server.buffering.discard(cycle)
        if complete:
            then(cycle)
            return
        error = spool.error
        drop_spool(server, cycle)
        # after the caller (a protocol error being noted, a connection lost) is done
        if error is None:
            asyncio.get_running_loop().call_soon(cycle.finish_unanswered)
            return
        logger.error("cannot store the request body from %s: %s", conn.client, error)
        conn.pause_reading()
        asyncio.get_running_loop().call_soon(_fail, conn)

    server.buffering.add(cycle)
    spool = cycle.spool = BodySpool(server.config.BODY_BUFFER_BYTES, done, listed)
    for data in cycle.body:  # what came with the head, if anything
        spool.write(data)
    cycle.body.clear()
    cycle.body_size = 0
    if spool.error is not None:
        return  # already failed (``done``)
    # the parent reads the body now: the client may send it, unless it did
    # already (the bytes of this read after the head are parsed first)
    asyncio.get_running_loop().call_soon(_continue_unless_complete, cycle)
    conn.resume_reading()


def _continue_unless_complete(cycle: HTTPCycle) -> None:
    if not cycle.body_complete and not cycle.disconnected:
        cycle.send_continue()


def _fail(conn: HTTPProtocol) -> None:
    """The body could not be stored: 500, as nginx answers (the rest is drained, ``linger``)."""
    if not conn._closing:
        conn._body_coming = True
        conn.fail(500, "Internal Server Error")


def drop_spool(server: ForkServer, cycle: HTTPCycle) -> None:
    """The parent's copy of the body is no longer needed: free it."""
    spool = cycle.spool if isinstance(cycle, HTTPCycle) else None  # not a WebSocketSession
    if spool is not None:
        spool.close()  # its file leaves child_closes (``listed``)


def over_websocket_cap(server: ForkServer, session: WebSocketSession) -> bool:
    """Refuse ``session`` with 503 if MAX_WEBSOCKETS children hold WebSockets; True if so."""
    if server.relayed_websockets < server.websocket_cap:
        return False
    conn = session.conn
    assert isinstance(conn, HTTPProtocol)
    logger.info("WebSocket from %s refused: MAX_WEBSOCKETS (%d) reached",
                conn.client, server.websocket_cap)
    state = server.state
    conn.pause_reading()
    conn.write(error_response(503, _WS_FULL, state.date_line, state.server_line,
                              UNAVAILABLE_HEADERS))
    conn.close()
    return True
