"""Tornado's `WebSocketHandler` over the ASGI websocket protocol.

Tornado runs a websocket as an HTTP GET whose handler answers 101 and then
takes the socket over (``detach()``) to speak RFC 6455 frames through a
`WebSocketProtocol13`.  An ASGI server speaks the frames itself and hands
the app whole messages, so the bridge gives the handler a message-level
`WebSocketProtocol` instead (`_ASGIWebSocketProtocol`), and everything
before it runs as for any request: routing, ``prepare``, ``check_origin``,
``select_subprotocol``, cookies.

The handshake answer becomes ``websocket.accept`` (with the subprotocol and
the handler's extra headers, e.g. ``Set-Cookie``; not ``Date``/``Server``,
which the server writes).  Any other answer (403 from ``check_origin``, 401
from ``prepare``, a plain page for a non-websocket handler) is sent through
the ``websocket.http.response`` extension when the server offers it, else
becomes ``websocket.close``, which servers answer with 403.

Ping and pong frames: plain ASGI carries none (the server keeps the
connection alive: ``ping()`` sends nothing, ``on_ping``/``on_pong`` are not
called and ``websocket_ping_interval`` is the server's to configure). When
the server offers qactuar's ``qactuar.websocket.ping`` extension, the
bridge asks for its events in ``websocket.accept``: ``ping()`` sends a
``websocket.ping``, ``on_ping`` is called for the client's pings (the
server has answered them already) and ``on_pong`` for its pongs, but for
none answering the server's own keep-alive pings (the server consumes
those), and
``websocket_ping_interval``/``websocket_ping_timeout`` ping as Tornado does
(closing with "ping timed out"). Compression is the server's
(``permessage-deflate`` is negotiated by it); under qactuar
(``qactuar.websocket.compression``) a handler whose
``get_compression_options()`` is None (Tornado's default) declines it, as
under Tornado; its options themselves are not used.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from tornado import httputil, iostream
from tornado.escape import json_encode, to_unicode
from tornado.log import gen_log
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol

from ._connection import _ASGIConnection, _closed_future, start_message
from ._request import _RequestContext
from ._types import (
    COMPRESSION_EXTENSION,
    COMPRESSION_KEY,
    PING_EVENTS_KEY,
    PING_EXTENSION,
    REASON_EXTENSION,
    Message,
    Receive,
    Scope,
    Send,
    offers,
)

# Handshake headers that are the ASGI server's to write.
_SERVER_HANDSHAKE_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "content-type",
        "date",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "server",
        "transfer-encoding",
        "upgrade",
    }
)
# How long to wait for the client's side of a closing handshake (as Tornado).
_CLOSE_WAIT = 5.0
# Yield to the loop after this much work (Tornado's numbers).
_YIELD_THRESHOLD = 256 * 1024
_MESSAGE_COST = 1024
# Close codes that say no code was received (RFC 6455 section 7.4.1).
_NO_CODE = (1005, 1006)


class _ASGIWebSocketConnection(_ASGIConnection):
    """The handshake's connection: the answer becomes accept, or a denial."""

    def __init__(
        self,
        send: Send,
        receive: Receive,
        context: _RequestContext,
        start_line: httputil.RequestStartLine,
        scope: Scope,
    ) -> None:
        super().__init__(send, context, start_line, max_body_size=0, body_timeout=None)
        self.read_finished = True  # A handshake has no body.
        self.receive = receive
        self.subprotocols: list[str] = list(scope.get("subprotocols") or ())
        self._can_deny = offers(scope, "websocket.http.response")
        self.reason_phrase = offers(scope, REASON_EXTENSION)
        #: ping()/on_ping/on_pong over qactuar.websocket.ping
        self.ping_events = offers(scope, PING_EXTENSION)
        #: the handler's get_compression_options() decides (qactuar.websocket.compression)
        self.compression_choice = offers(scope, COMPRESSION_EXTENSION)
        self.handler: WebSocketHandler | None = None
        self._denying = False
        self.accepted = False
        self.websocket_over = asyncio.Event()
        self.protocol: _ASGIWebSocketProtocol | None = None

    def set_close_callback(self, callback: Any) -> None:
        handler = getattr(callback, "__self__", None)
        if isinstance(handler, WebSocketHandler):
            # RequestHandler.__init__ passes its on_connection_close here:
            # the one moment to give it a protocol that speaks ASGI.
            self.handler = handler
            def get_websocket_protocol() -> WebSocketProtocol:
                self.protocol = _ASGIWebSocketProtocol(handler, self)
                return self.protocol

            handler.get_websocket_protocol = get_websocket_protocol  # type: ignore[method-assign]
        self._close_callback = callback

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine), start_line
        self.response_started = True
        if self.closed:
            return _closed_future(self._loop)
        if start_line.code == 101:
            self.accepted = True
            extra = [
                (name.lower().encode("latin-1"), str(value).encode("latin-1"))
                for name, value in headers.get_all()
                if name.lower() not in _SERVER_HANDSHAKE_HEADERS
            ]
            accept: Message = {
                "type": "websocket.accept",
                "subprotocol": headers.get("Sec-WebSocket-Protocol"),
                "headers": extra,
            }
            if self.ping_events:
                accept[PING_EVENTS_KEY] = True
            handler = self.handler
            if self.compression_choice and handler and handler.get_compression_options() is None:
                accept[COMPRESSION_KEY] = False  # as Tornado: no options, no permessage-deflate
            return self._enqueue(accept)
        if not self._can_deny:
            return self._enqueue({"type": "websocket.close", "code": 1000})
        self._denying = True
        denial = [
            (name.lower().encode("latin-1"), str(value).encode("latin-1"))
            for name, value in headers.get_all()
            if name.lower() != "transfer-encoding"
        ]
        start = start_message(
            "websocket.http.response.start", start_line, denial, self.reason_phrase
        )
        future = self._enqueue(start)
        if chunk:
            future = self.write(chunk)
        return future

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        if self.closed:
            return _closed_future(self._loop)
        if not self._denying:
            done: asyncio.Future[None] = self._loop.create_future()
            done.set_result(None)
            return done
        return self._enqueue(
            {"type": "websocket.http.response.body", "body": chunk, "more_body": True}
        )

    def finish(self) -> None:
        self.write_finished = True
        if self._denying and not self.closed:
            self._enqueue({"type": "websocket.http.response.body", "body": b"", "more_body": False})

    def detach(self) -> None:
        """The handler takes the websocket over (Tornado: the IOStream)."""
        self._close_callback = None

    def close_by_app(self) -> None:
        """The handler closed the stream: Tornado drops the connection.

        Open: the protocol's abort (a 1011 close, see `_ASGIWebSocketProtocol._abort`).
        Before the handshake is answered: ``websocket.close``, which the server
        answers with 403.
        """
        if self.closed:
            return
        if self.accepted and self.protocol is not None:
            self.protocol._abort()
        elif not self.response_started:
            self.response_started = True
            self._enqueue({"type": "websocket.close", "code": 1011})
            self.close_after_sending()
        else:
            self.abort()
        self._loop.call_soon(self._closed_by_app)

    def send_message(self, message: Message) -> asyncio.Future[None]:
        if self.closed:
            return _closed_future(self._loop)
        return self._enqueue(message)

    def _is_final(self, message: Message) -> bool:
        kind = message["type"]
        if kind == "websocket.close":
            return True
        return kind == "websocket.http.response.body" and not message["more_body"]


class _ASGIWebSocketProtocol(WebSocketProtocol):
    """Tornado's websocket protocol object, at ASGI's message level."""

    def __init__(self, handler: WebSocketHandler, connection: _ASGIWebSocketConnection) -> None:
        super().__init__(handler)
        self._handler = handler
        self._connection = connection
        self._selected_subprotocol: str | None = None
        self._sent_close_code: int | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._received_pong = False

    @property
    def selected_subprotocol(self) -> str | None:
        return self._selected_subprotocol

    async def accept_connection(self, handler: WebSocketHandler) -> None:
        try:
            await self._accept_connection(handler)
        except asyncio.CancelledError:
            self._abort()

    async def _accept_connection(self, handler: WebSocketHandler) -> None:
        offered = self._connection.subprotocols
        self._selected_subprotocol = handler.select_subprotocol(offered)
        if self._selected_subprotocol:
            assert self._selected_subprotocol in offered
            handler.set_header("Sec-WebSocket-Protocol", self._selected_subprotocol)
        handler.clear_header("Content-Type")
        handler.set_status(101)
        handler.finish()
        handler._detach_stream()
        self.start_pinging()
        try:
            opened = handler.open(*handler.open_args, **handler.open_kwargs)
            if opened is not None:
                await opened
        except Exception:
            handler.log_exception(*sys.exc_info())
            # Tornado drops the connection; in ASGI an app that just returns
            # gets a normal close (1000) from some servers: say it failed.
            self.close(1011)
            self._abort()
            self._connection.websocket_over.set()
            return
        await self._receive_frame_loop()

    async def _receive_frame_loop(self) -> None:
        work = 0
        try:
            while not self.client_terminated:
                message = await self._connection.receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    data: str | bytes = text if text is not None else message.get("bytes") or b""
                    # A flood of ready messages must not hold the loop: yield
                    # now and then, as Tornado's frame reader does.
                    work += _MESSAGE_COST + len(data)
                    if work >= _YIELD_THRESHOLD:
                        work = 0
                        await asyncio.sleep(0)
                    if len(data) > self._handler.max_message_size:
                        self.close(1009, "message too big")
                        self._abort()
                        break
                    handled = self._run_callback(self._handler.on_message, data)
                    if handled is not None:
                        await handled
                elif kind == "websocket.ping":
                    self._run_callback(self._handler.on_ping, message.get("bytes") or b"")
                elif kind == "websocket.pong":
                    self._received_pong = True
                    handled = self._run_callback(self._handler.on_pong, message.get("bytes") or b"")
                    if handled is not None:
                        await handled
                elif kind == "websocket.disconnect":
                    self.client_terminated = True
                    self.server_terminated = True
                    code = message.get("code")
                    if self._sent_close_code is not None or code in _NO_CODE:
                        # After our close the client echoes our code (RFC 6455
                        # 5.5.1), which is what Tornado reports; servers differ
                        # in what they say here, so don't ask them.
                        code = self._sent_close_code
                    self.close_code = code
                    self.close_reason = message.get("reason") or None
                    self._connection.abort()
        finally:
            if self._ping_task is not None:
                self._ping_task.cancel()
            self._connection.websocket_over.set()
            self._handler.on_ws_connection_close(self.close_code, self.close_reason)

    def write_message(
        self, message: str | bytes | dict[str, Any], binary: bool = False
    ) -> asyncio.Future[None]:
        if isinstance(message, dict):
            message = json_encode(message)
        if binary:
            payload: Message = {
                "type": "websocket.send",
                "bytes": message.encode() if isinstance(message, str) else message,
            }
        else:
            payload = {"type": "websocket.send", "text": to_unicode(message)}
        if self._connection.closed:
            raise WebSocketClosedError()
        sent = self._connection.send_message(payload)

        async def wait_sent() -> None:
            try:
                await sent
            except iostream.StreamClosedError:
                raise WebSocketClosedError() from None

        return asyncio.ensure_future(wait_sent())

    def write_ping(self, data: bytes) -> None:
        if len(data) > 125:
            raise ValueError("control frame payloads may not exceed 125 bytes")  # as Tornado
        if not self._connection.ping_events:
            gen_log.debug("websocket ping not sent: ASGI carries no ping frames")
            return
        self._connection.send_message({"type": "websocket.ping", "bytes": data})

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if not self.server_terminated:
            if code is None and reason is not None:
                code = 1000
            message: Message = {"type": "websocket.close", "code": code or 1000}
            if reason is not None:
                message["reason"] = reason
            self._sent_close_code = code
            self._connection.send_message(message)
            self.server_terminated = True

    def is_closing(self) -> bool:
        return self._connection.closed or self.client_terminated or self.server_terminated

    def _abort(self) -> None:
        # Tornado closes the socket (the client sees 1006, no close frame):
        # it does so when a callback raised (on_message, open, ...), logged
        # once by _run_callback. In ASGI an app that just returns gets a
        # normal close (1000) from some servers, which hides the failure: an
        # open websocket with no close sent yet is closed with 1011 (internal
        # error). What is already queued still goes out, then the ASGI call
        # ends and the server drops the connection.
        if self._connection.accepted and not self.server_terminated:
            self._sent_close_code = 1011
            self._connection.send_message({"type": "websocket.close", "code": 1011})
        self.client_terminated = True
        self.server_terminated = True
        self._connection.close_after_sending()

    def set_nodelay(self, x: bool) -> None:
        pass  # The server's socket, the server's choice.

    def start_pinging(self) -> None:
        """Tornado's periodic pings (``websocket_ping_interval``), over the ping extension.

        Without it ASGI carries no pings: the server's own keep the connection alive.
        """
        interval = self._handler.ping_interval or 0
        if self._connection.ping_events and interval > 0 and self._ping_task is None:
            self._ping_task = asyncio.ensure_future(self._periodic_ping(interval))

    async def _periodic_ping(self, interval: float) -> None:
        """Tornado's ``WebSocketProtocol13.periodic_ping``: ping, and close if no pong."""
        timeout = self._handler.ping_timeout
        timeout = interval if timeout is None else min(timeout, interval)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(interval)
        while not self.is_closing():
            self._received_pong = False
            sent_at = loop.time()
            self.write_ping(b"")
            await asyncio.sleep(timeout)
            if timeout > 0 and not self._received_pong:
                self.close(reason="ping timed out")
                return
            await asyncio.sleep(max(0.0, sent_at + interval - loop.time()))

    def _process_server_headers(self, key: str | bytes, headers: httputil.HTTPHeaders) -> None:
        raise NotImplementedError("the bridge serves websockets; it is no client")
