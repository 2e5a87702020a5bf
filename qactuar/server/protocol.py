"""One asyncio Protocol per HTTP connection.

It feeds received bytes to the sans-I/O parser, hands each request head to
an ``HTTPCycle`` and runs the cycles one after another (pipelined requests
wait their turn, so responses leave in order). What the application is given,
the scope and the cycle, is built in ``handoff``. Flow control runs both ways:
reading pauses while an application leaves its request body unread or while
a pipelined request waits (``pacing``: parsed as fast as answered), and
``drain()`` blocks a sending application while the transport's write buffer
is over its high-water mark (``stalls``: for at most SEND_TIMEOUT).

Timeouts are not timers: the server's sweep compares each connection's
``deadline`` with its coarse clock about four times per timeout, which costs
nothing on the request path.

Behind a proxy (``proxied``): the peer is judged against
FORWARDED_ALLOW_IPS once, as the connection opens; with PROXY_PROTOCOL its
first bytes must be a PROXY header from a trusted peer, consumed (its
addresses become ``client``/``server``) before the parser sees a byte.
Proxy headers are read per request in ``handoff``.

A WebSocket upgrade is checked in ``handoff`` too; a valid one hands the
connection to a ``WebSocketSession``, which gets every later byte. The
process models hook in through the shared ``ServerState`` (``run_cycle``,
``on_open``, ``on_close``, ``in_flight``): the fork model runs each cycle
with its application relayed to a child, with no request handling of its
own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from ..asgi.cycle import HTTPCycle
from ..http import END_OF_MESSAGE, Event, ProtocolError, RequestHead, RequestParser, error_response
from ..logs import printable
from . import pacing
from .body import body_timed_out
from .gate import answered_by_server
from .handoff import asgi_address, http_cycle, is_websocket_handshake, websocket_session
from .linger import linger
from .pacing import feed as _feed
from .proxied import judge_peer
from .sockets import peer_gone

if TYPE_CHECKING:
    from ..proxy import ProxyHeaderParser
    from ..websocket import WebSocketSession
    from .server import ServerState

__all__ = ["IDLE_GRACE", "HTTPProtocol"]

logger = logging.getLogger("qt_server")

#: Unread request body kept per connection before reading pauses.
READ_HIGH_WATER = 64 * 1024
#: On a graceful stop, an idle keep-alive connection is closed only once it
#: has been quiet this long: under load its next request is usually on its way.
IDLE_GRACE = 0.25
#: Bytes ``write_soon`` holds before it writes them at once.
HELD_MAX = 64 * 1024


class HTTPProtocol(asyncio.Protocol):
    __slots__ = (
        "state",
        "transport",
        "parser",
        "cycle",
        "pipeline",
        "deadline",
        "client",
        "server",
        "scheme",
        "tls",
        "forwarded",
        "proxy_header",
        "_parsing",
        "_reading",
        "_write_paused",
        "_drain_waiter",
        "_error",
        "_closing",
        "_upgraded",
        "_next_waits_for_drain",
        "_ws",
        "_body_coming",
        "_half_closed",
        "_unparsed",
        "_unparsed_at",
        "_held",
        "_held_bytes",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.parser = RequestParser(state.limits)
        self.transport: asyncio.Transport | None = None
        #: The cycle whose response is being produced.
        self.cycle: HTTPCycle | None = None
        #: Complete heads waiting for the current cycle to finish.
        self.pipeline: deque[HTTPCycle] = deque()
        #: Clock value after which an idle or slow connection is closed; 0: none.
        self.deadline = 0.0
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        #: The ASGI TLS extension of this connection; None over plain TCP.
        self.tls: dict[str, Any] | None = None
        #: The peer is a trusted proxy and PROXY_HEADERS is on: each request's
        #: proxy headers say who the client is (see ``handoff``).
        self.forwarded = False
        #: Reads the PROXY protocol header that must come first (PROXY_PROTOCOL).
        self.proxy_header: ProxyHeaderParser | None = None
        self._parsing: HTTPCycle | None = None
        self._reading = True
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._error: ProtocolError | None = None
        self._closing = False
        self._upgraded = False
        self._next_waits_for_drain = False
        self._ws: WebSocketSession | None = None
        #: A protocol error came while the client may still send a body (413,
        #: bad bytes mid-body): the error's close lingers (``linger``).
        self._body_coming = False
        #: The client shut down its sending side after complete requests
        #: (``nc -N``): they are answered, then the connection closes.
        self._half_closed = False
        #: A read's rest, kept unparsed while a pipelined request waits (pacing).
        self._unparsed, self._unparsed_at = b"", 0
        #: A streamed response's pieces, written together at the end of this
        #: turn of the loop (``write_soon``); None when there are none.
        self._held: list[bytes] | None = None
        self._held_bytes = 0

    # asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self.client = asgi_address(transport.get_extra_info("peername"))
        self.server = asgi_address(transport.get_extra_info("sockname"))
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.scheme = "https"
            if self.state.tls is not None:
                self.tls = self.state.tls.extension(ssl_object)
        self.state.connections.add(self)
        self._reading = True
        self.deadline = self.state.clock + self.state.header_timeout
        if self.state.on_open is not None:
            self.state.on_open(self)
        if self.state.trusted_peers is not None:
            judge_peer(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.state.stalls.resumed(self)
        self._closing, self._unparsed = True, b""
        try:
            if self._ws is not None:
                self._ws.connection_lost()
            if self.cycle is not None:
                self.cycle.disconnect()
            for cycle in self.pipeline:
                cycle.disconnect()
            self.pipeline.clear()
            self._wake_drain()
        finally:
            # the fork model's parent stops listing this socket's descriptor
            if self.state.on_close is not None:
                self.state.on_close(self)

    def eof_received(self) -> bool | None:
        """The client sent its FIN: answer what it sent complete, then close.

        A client that half-closes after its request (``shutdown(SHUT_WR)``,
        ``nc -N``) still reads the response (RFC 9112 §9.6 lets a client
        close its sending side first). Returning True keeps the transport
        open for writing; each waiting cycle is told (``client_finished``:
        an app listening for ``http.disconnect`` hears it, as before). With
        nothing to answer, or a request cut short, the connection closes as
        before (as uvicorn does on every EOF). Over TLS the transport closes
        whatever this answers (asyncio's SSL layer does not half-close).
        """
        if (
            self._ws is not None
            or self._closing
            or (self.cycle is None and not self.pipeline)
            or (not self.parser.idle and not self._unparsed)  # cut short (not merely paced)
            or self._error is not None
            or self.transport is None
            or self.transport.get_extra_info("ssl_object") is not None
        ):
            return None
        self._half_closed = True
        self._reading = False  # the transport stops reading at EOF
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.client_finished()
        last = self.pipeline[-1] if self.pipeline else self.cycle
        if last is not None and not last.response.head_sent and not self._unparsed:
            last.response.keep_alive = False  # its response says "connection: close"
        return True

    def data_received(self, data: bytes) -> None:
        if self.proxy_header is None and self._ws is None and not self._unparsed:
            _feed(self, data, 0)  # (pacing.received's common case, one call less)
        else:
            pacing.received(self, data)

    def _handle_events(self, events: list[Event]) -> None:
        for event in events:
            if event.__class__ is bytes:
                cycle = self._parsing
                if cycle is not None and not cycle.done:
                    cycle.feed_body(event)  # type: ignore[arg-type]
                    if cycle.body_size > READ_HIGH_WATER:
                        self.pause_reading()
            elif event is END_OF_MESSAGE:
                if self._parsing is not None:
                    self._parsing.end_body()
                    self._parsing = None
            else:
                assert isinstance(event, RequestHead)
                self._on_head(event)

    def pause_writing(self) -> None:
        self._write_paused = True
        self.state.stalls.paused(self, self.state.monotonic())  # SEND_TIMEOUT

    def resume_writing(self) -> None:
        self._write_paused = False
        self.state.stalls.resumed(self)
        self._wake_drain()
        if self._next_waits_for_drain:
            self._next_waits_for_drain = False
            self._next()

    # request handling ---------------------------------------------------------

    def _on_head(self, head: RequestHead) -> None:
        if head.upgrade == b"websocket" and self.cycle is None and not self.pipeline:
            if is_websocket_handshake(head):  # else served as HTTP (handoff)
                return self._on_websocket(head)
        cycle = http_cycle(self, head)
        if self.state.shutting_down:
            cycle.response.keep_alive = False  # the last one on this connection
        if head.has_body:
            self._parsing = cycle
        if self.cycle is None and not self._next_waits_for_drain:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)  # pacing.feed parses no further

    def _on_websocket(self, head: RequestHead) -> None:
        session = websocket_session(self, head)
        if session is None:
            return
        self._ws = session
        self.cycle = session  # type: ignore[assignment]
        self.deadline = 0.0
        self.state.run_cycle(session)  # type: ignore[arg-type]

    def peer_gone(self) -> bool:
        """The client has left, though the loop may not have read its FIN yet."""
        return peer_gone(self.transport)

    def close(self) -> None:
        """Close the connection once what was written has been sent (SEND_TIMEOUT: or not)."""
        if self.transport is not None and not self._closing:
            self._write_held()
            self._closing = True
            self.state.stalls.closing(self.transport)
            self.transport.close()

    def _start(self, cycle: HTTPCycle) -> None:
        self.cycle = cycle
        self.deadline = 0.0
        state = self.state
        if (state.health_path or state.limit_concurrency) and answered_by_server(state, cycle):
            return  # a health check or over LIMIT_CONCURRENCY: answered, no app runs
        state.run_cycle(cycle)

    def _on_upgrade(self) -> None:
        # No protocol is switched to: the request is served as plain HTTP and
        # the connection closes after it, as the rest of the stream is opaque.
        self._upgraded = True
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.response.keep_alive = False
        self.pause_reading()

    def _protocol_error(self, exc: ProtocolError) -> None:
        self.pause_reading()
        self._error = exc
        broken = self._parsing
        self._body_coming = broken is not None or exc.status == 413
        if broken is not None:
            self._parsing = None
            if broken in self.pipeline:
                self.pipeline.remove(broken)
            else:
                broken.disconnect()  # its body is unusable
        if self.cycle is None:
            self._send_error()

    def fail(self, status: int, reason: str) -> None:
        """Answer ``status`` (if nothing of a response was sent) and close."""
        self._write_held()
        self.cycle = None
        self.pipeline.clear()
        self._error = ProtocolError(status, reason)
        if status:
            self._send_error()
        else:
            assert self.transport is not None
            self._closing = True
            self.transport.close()

    def _send_error(self) -> None:
        exc = self._error
        assert exc is not None and self.transport is not None
        self._write_held()  # (what came before goes first)
        if exc.status < 500:
            logger.info("Bad request from %s: %s", self.client, printable(str(exc)))
        state = self.state
        if state.tally is not None:  # a malformed request, a timeout
            state.tally.server_answered(exc.status)
        self.transport.write(
            error_response(exc.status, exc.reason, state.date_line, state.server_line)
        )
        self._closing = True
        if self._body_coming:
            linger(self, self.transport)
        else:
            self.transport.close()

    def cycle_done(self, cycle: HTTPCycle) -> None:
        """Called by the cycle once its response is complete or abandoned."""
        if cycle is not self.cycle:
            return
        self.cycle = None
        # the response's held pieces go now: its last message may have been
        # empty (a Content-Length or HEAD response, 204, 304), and what
        # follows (an error's answer, a lingering close's EOF) writes directly
        self._write_held()
        if self._ws is not None:
            self.close()  # a WebSocket connection ends with its application
            return
        transport = self.transport
        assert transport is not None
        if self._closing or transport.is_closing():
            return
        if self._error is not None:
            if not self.pipeline:
                if cycle.started and not cycle.response.complete:
                    transport.close()
                else:
                    self._send_error()
                return
        elif not cycle.body_complete:
            # answered before the body is in (a 503 of LIMIT_CONCURRENCY, an
            # app that did not read it): the client is still sending
            self._closing = True
            linger(self, transport)
            return
        elif not cycle.response.keep_alive or self.state.shutting_down:
            self.close()
            return
        self._next()

    def _next(self) -> None:
        """Start the next pipelined request, or wait for one."""
        if self.cycle is not None:
            return
        if self._write_paused and (self.pipeline or self._error is None):
            # the client is not reading: serve nothing more until it does
            self._next_waits_for_drain = True
            return
        if self.pipeline:
            self._start(self.pipeline.popleft())
            pacing.resume(self)  # the rest of the read, or reading
        elif self._error is not None:
            self._send_error()
        elif self._half_closed and not self._unparsed:
            self.close()  # every request the client sent before its FIN is answered
        else:
            if self.parser.idle:
                self.deadline = self.state.clock + self.state.keep_alive_timeout
            elif not self.deadline:  # mid-head: HEADER_TIMEOUT, from its first byte
                self.deadline = self.state.clock + self.state.header_timeout
            self.resume_reading()

    # what the cycle and the server call -------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        if self._held is not None:  # after what is held, in one write
            self._held.append(data)
            self._write_held()
            return
        self.transport.write(data)

    def write_soon(self, data: bytes) -> None:
        """Write ``data`` before this turn of the event loop ends, with whatever
        else is written so meanwhile (at once past ``HELD_MAX`` bytes).

        For a response streamed in many small messages: an app that sends
        them without waiting in between costs one system call a turn, not
        one a message (a 1,000-chunk response: one instead of 1,000).
        """
        held = self._held
        if held is None:
            self._held = [data]
            self._held_bytes = len(data)
            asyncio.get_running_loop().call_soon(self._write_held)
            return
        held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes >= HELD_MAX:
            self._write_held()

    def _write_held(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(b"".join(held) if len(held) > 1 else held[0])

    async def drain(self) -> None:
        if self._write_paused and not self._closing:
            waiter = self._drain_waiter
            if waiter is None:
                waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            await waiter

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pause_reading(self) -> None:
        if self._reading and self.transport is not None:
            self._reading = False
            self.transport.pause_reading()
        if self._parsing is not None:  # BODY_TIMEOUT runs only while the server reads
            self.deadline = 0.0

    def resume_reading(self) -> None:
        if (
            not self._reading
            and self._error is None
            and not self._upgraded
            and not self._closing
            and not self._half_closed
            and not self.pipeline
            and (self._parsing is None or self._parsing.body_size <= READ_HIGH_WATER)
        ):
            self._reading = True
            assert self.transport is not None
            self.transport.resume_reading()
        if self._parsing is not None and self._reading:  # the app wants more: re-armed
            self.deadline = self.state.body_deadline(self._parsing)

    def check_timeout(self, now: float) -> None:
        """The server's sweep: close the connection if its deadline passed."""
        if self._parsing is not None:  # a body stopped coming: BODY_TIMEOUT (not lingering)
            return None if self._closing else body_timed_out(self, self._parsing)
        if self.deadline and now >= self.deadline and self.cycle is None:
            self.deadline = 0.0
            if self.parser.in_head:
                self._error = ProtocolError(408, "Request header timeout")
                self._send_error()
            else:
                if self.proxy_header is not None:
                    logger.info("PROXY protocol from %s: no header in time; closed", self.client)
                self.close()

    def going_away(self) -> bool:
        """Graceful time is up: close an open WebSocket with 1001. True if one was."""
        return self._ws is not None and self._ws.going_away()

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the current response."""
        for cycle in (self.cycle, *self.pipeline):
            if isinstance(cycle, HTTPCycle):
                cycle.response.keep_alive = False  # says "connection: close"
        if self.cycle is None and not self.pipeline:
            self._closing = True
            assert self.transport is not None
            self.transport.close()
