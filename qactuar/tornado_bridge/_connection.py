"""A Tornado `HTTPConnection` whose output is ASGI ``send`` messages.

Tornado's `RequestHandler` writes its response through
``request.connection``: `write_headers`, `write` and `finish`, each returning
a future for flow control.  Under Tornado's HTTPServer that is an
`HTTP1Connection` writing to an `IOStream`; here every call becomes one ASGI
message, queued in order and sent by `_ASGIConnection.pump`, which the
bridge runs in the ASGI call itself.  A write's future resolves once the
server has taken its message, so ``await self.flush()`` in a handler waits
for the server's own back-pressure, as it waits for the socket under
Tornado.

Framing is the ASGI server's job: ``Transfer-Encoding`` is dropped,
``Content-Length`` kept, and Tornado's own checks that a response does not
write more or less than its ``Content-Length`` are kept too.

``request.connection.stream``, which handlers use to see whether the client
is still there, is a stand-in (`_stream.ASGIStream`) answering from
``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import http.client
import re
from collections.abc import Callable

from tornado import httputil, iostream
from tornado.concurrent import future_set_result_unless_cancelled
from tornado.escape import native_str
from tornado.log import gen_log
from tornado.websocket import WebSocketHandler

from ._request import _RequestContext
from ._stream import ASGIStream
from ._types import Message, Send

_DIGITS = re.compile(r"[0-9]+")
# RFC 9112 reason-phrase, as Tornado >= 6.5.3 checks it in set_status (httputil._ABNF).
_REASON_PHRASE = re.compile(r"(?:[\t ]|[\x21-\x7E]|[\x80-\xFF])+")


def asgi_reason(code: int, reason: str) -> str | None:
    """The ``reason`` to send for Tornado's status line; None for the standard one.

    A phrase that fails Tornado's own rule becomes "Unknown", as Tornado >=
    6.5.3's ``set_status`` makes it (older versions stored any phrase: sent
    as is, the server would refuse it with a 500). The standard phrase for
    a status under 600 is the server's own: not sent.
    """
    if "<" in reason or not _REASON_PHRASE.fullmatch(reason):
        reason = "Unknown"
    if code < 600 and http.client.responses.get(code) == reason:
        return None
    return reason


def start_message(
    kind: str, start_line: httputil.ResponseStartLine, headers: list[tuple[bytes, bytes]],
    with_reason: bool,
) -> Message:
    """``http.response.start`` (or the denial's ``kind``), with Tornado's reason if offered."""
    start: Message = {"type": kind, "status": start_line.code, "headers": headers}
    if with_reason:
        reason = asgi_reason(start_line.code, start_line.reason)
        if reason is not None:
            start["reason"] = reason
    return start


class _NoUpgradeProtocol:
    """What a `WebSocketHandler` gets for a handshake that came as a plain HTTP request.

    Tornado's ``WebSocketProtocol13`` would check the handshake headers and
    take the socket over; an ASGI app has no socket to take. So: Tornado's
    400 for missing or invalid headers (qactuar serves a handshake without a
    valid ``Sec-WebSocket-Key`` as HTTP, RFC 9110 §7.8), else Tornado's
    answer to a protocol it cannot speak, 426 (a server with its websockets off).
    """

    async def accept_connection(self, handler: WebSocketHandler) -> None:
        handler.ws_connection = None
        headers = handler.request.headers
        if not all(headers.get(field) for field in _HANDSHAKE_FIELDS) or not _valid_key(
            headers["Sec-Websocket-Key"]
        ):
            handler.set_status(400)
            log_msg = "Missing/Invalid WebSocket headers"
            handler.finish(log_msg)
            gen_log.debug(log_msg)
            return
        handler.set_status(426, "Upgrade Required")
        handler.set_header("Sec-WebSocket-Version", "13")


_HANDSHAKE_FIELDS = ("Host", "Sec-Websocket-Key", "Sec-Websocket-Version")


def _valid_key(key: str) -> bool:
    """RFC 6455 §4.2.1: base64 of 16 bytes (a repeated field reads "k1,k2": invalid)."""
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _no_websocket_protocol(handler: WebSocketHandler) -> Callable[[], _NoUpgradeProtocol | None]:
    def protocol() -> _NoUpgradeProtocol | None:
        if handler.request.headers.get("Sec-WebSocket-Version") != "13":
            return None  # Tornado answers 426 Upgrade Required
        return _NoUpgradeProtocol()

    return protocol


def _has_cr_or_lf(data: bytes) -> bool:
    return b"\r" in data or b"\n" in data


def _fail(future: asyncio.Future[None]) -> None:
    """A write that will never happen: StreamClosedError, as on a closed IOStream."""
    if not future.done():
        future.set_exception(iostream.StreamClosedError())
        future.exception()  # Mark as retrieved, as HTTP1Connection does.


def _closed_future(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    _fail(future)
    return future


class _ASGIConnection(httputil.HTTPConnection):
    """One request's connection: Tornado writes, ASGI messages come out."""

    def __init__(
        self,
        send: Send,
        context: _RequestContext,
        start_line: httputil.RequestStartLine,
        max_body_size: int,
        body_timeout: float | None,
    ) -> None:
        self.context = context
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._request_start_line = start_line
        self._outbox: collections.deque[tuple[Message, asyncio.Future[None]]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._close_callback: Callable[[], None] | None = None
        self._expected_content_remaining: int | None = None
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.response_started = False
        # The response head went to the server: it cannot be taken back.
        self.start_sent = False
        self.read_finished = False
        self.write_finished = False
        # True once the final message went out, or the client is gone.
        self.done = False
        self.closed = False
        self._stream: ASGIStream | None = None
        #: The server writes a reason phrase (qactuar.http.response.reason).
        self.reason_phrase = False

    # -- the interface RequestHandler uses ---------------------------------

    @property
    def stream(self) -> ASGIStream:
        """The stand-in for Tornado's IOStream (see `_stream`)."""
        if self._stream is None:
            self._stream = ASGIStream(self, self._loop)
        return self._stream

    def close(self) -> None:
        """As HTTP1Connection.close(): close the stream."""
        self.stream.close()

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Called with the handler's ``on_connection_close`` (as HTTP1Connection)."""
        handler = getattr(callback, "__self__", None)
        if isinstance(handler, WebSocketHandler):
            # A websocket handshake that the server sent as a plain HTTP
            # request (incomplete, or its websockets off): no socket to take
            # over, so Tornado's 400 or 426 (see _NoUpgradeProtocol).
            handler.get_websocket_protocol = _no_websocket_protocol(handler)  # type: ignore[method-assign,assignment]
        self._close_callback = callback

    def set_max_body_size(self, max_body_size: int) -> None:
        """Per-request body limit, e.g. from a streaming handler's ``prepare``."""
        self.max_body_size = max_body_size

    def set_body_timeout(self, timeout: float) -> None:
        """Per-request limit on the wait for each piece of the body."""
        self.body_timeout = timeout

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine), start_line
        if self._request_start_line.method == "HEAD" or start_line.code == 304:
            self._expected_content_remaining = 0
        elif "Content-Length" in headers:
            length = headers["Content-Length"]
            if _DIGITS.fullmatch(length) is None:
                raise ValueError(f"Content-Length is not an integer: {length!r}")
            self._expected_content_remaining = int(length)
        else:
            self._expected_content_remaining = None
        asgi_headers: list[tuple[bytes, bytes]] = []
        for name, value in headers.get_all():
            lowered = name.lower()
            if lowered == "transfer-encoding":
                continue  # Framing belongs to the ASGI server.
            encoded_name = lowered.encode("latin-1")
            encoded_value = native_str(value).encode("latin-1")
            if _has_cr_or_lf(encoded_name) or _has_cr_or_lf(encoded_value):
                raise ValueError(f"Illegal characters (CR or LF) in header: {name}: {value!r}")
            asgi_headers.append((encoded_name, encoded_value))
        if not self.read_finished and "Connection" not in headers:
            # Answered before the request body was read (e.g. 401 from a
            # streaming handler's prepare): the rest of the body will not be
            # read, so the connection cannot be reused, as under Tornado.
            asgi_headers.append((b"connection", b"close"))
        self.response_started = True
        if self.closed:
            return _closed_future(self._loop)
        start = start_message(
            "http.response.start", start_line, asgi_headers, self.reason_phrase
        )
        future = self._enqueue(start)
        if chunk:
            future = self._enqueue_body(chunk)
        return future

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        if self.closed:
            return _closed_future(self._loop)
        return self._enqueue_body(chunk)

    def finish(self) -> None:
        remaining = self._expected_content_remaining
        if remaining is not None and remaining != 0 and not self.closed:
            self.abort()
            raise httputil.HTTPOutputError(
                f"Tried to write {remaining} bytes less than Content-Length"
            )
        self.write_finished = True
        if self.closed:
            return
        if self._outbox:
            last_message = self._outbox[-1][0]
            if last_message["type"] == "http.response.body":
                # Still unsent: it becomes the last message, one send fewer.
                last_message["more_body"] = False
                return
        self._enqueue({"type": "http.response.body", "body": b"", "more_body": False})

    # -- driven by the bridge ----------------------------------------------

    async def pump(self) -> None:
        """Send queued messages in order until the response is complete or aborted."""
        while True:
            while self._outbox:
                # Taken off the queue before the send: while it is in flight,
                # abort() (the client going away) fails only what follows.
                message, future = self._outbox.popleft()
                final = self._is_final(message)
                if final:
                    # The app is done with the response: a disconnect
                    # reported from now on is no news to it.
                    self.done = True
                if message["type"] == "http.response.start":
                    self.start_sent = True
                try:
                    await self._send(message)
                except OSError as exc:
                    # Some servers raise once the client has gone: Tornado
                    # sees a closed stream, as on a socket.
                    gen_log.debug("ASGI send failed (%r): client gone", exc)
                    _fail(future)
                    self.client_gone()
                    return
                except BaseException:
                    # The server refused the message (e.g. a status code it
                    # cannot write): it is the server's to report.
                    _fail(future)
                    self.abort()
                    raise
                future_set_result_unless_cancelled(future, None)
                if final:
                    return
            if self.closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    def client_gone(self) -> None:
        """The client disconnected: fail pending writes, tell the handler once."""
        if self.done:
            return
        self.abort()
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()

    def abort(self) -> None:
        """Stop sending: pending and later writes fail with StreamClosedError."""
        if self.closed:
            return
        self.done = True
        self._drop_outbox()
        self._mark_closed()

    def close_after_sending(self) -> None:
        """Take no more writes; what is queued still goes out, then the pump stops."""
        self._mark_closed()

    def close_by_app(self) -> None:
        """The handler closed the stream: end the exchange as far as ASGI can.

        Tornado closes the socket: the client gets no (or no more) response.
        An ASGI app cannot drop a connection, and a call that returns without
        a response makes the server answer 500 and log an application error.
        So when nothing has reached the server yet, the bridge sends that 500
        itself, bodiless and with ``Connection: close``, and logs nothing (as
        Tornado); once the response head is out, the response is abandoned:
        the server closes the connection (and reports the incomplete body).
        Either way writes fail from now on and ``on_connection_close`` runs
        (on the next iteration, unless the handler finished by then).
        """
        if self.closed:
            return
        if self.start_sent or self.done:
            self.abort()
        else:
            gen_log.debug(
                "stream closed by the handler before a response: answered 500 with "
                "Connection: close (an ASGI app cannot drop its connection)"
            )
            self._drop_outbox()
            self._enqueue_plain(500)
            self._mark_closed()
        # As under Tornado: on the next iteration, unless the handler finished
        # meanwhile (as most do, writing on at once: their writes just fail;
        # RequestHandler.finish() clears the callback).
        self._loop.call_soon(self._closed_by_app)

    def _closed_by_app(self) -> None:
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()

    def respond_plain(self, status: int) -> None:
        """A bodiless error response from the bridge itself (no handler ran)."""
        if self.response_started or self.closed:
            self.abort()
            return
        self._enqueue_plain(status)

    # -- internals -----------------------------------------------------------

    def _enqueue_plain(self, status: int) -> None:
        self.response_started = True
        self._enqueue(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"0"), (b"connection", b"close")],
            }
        )
        self._enqueue({"type": "http.response.body", "body": b"", "more_body": False})

    def _drop_outbox(self) -> None:
        while self._outbox:
            _fail(self._outbox.popleft()[1])

    def _mark_closed(self) -> None:
        self.closed = True
        self._wakeup.set()
        if self._stream is not None:
            self._stream.signal_closed()

    def _is_final(self, message: Message) -> bool:
        return message["type"] == "http.response.body" and not message["more_body"]

    def _enqueue_body(self, chunk: bytes) -> asyncio.Future[None]:
        if self._expected_content_remaining is not None:
            self._expected_content_remaining -= len(chunk)
            if self._expected_content_remaining < 0:
                self.abort()
                raise httputil.HTTPOutputError("Tried to write more data than Content-Length")
        return self._enqueue({"type": "http.response.body", "body": chunk, "more_body": True})

    def _enqueue(self, message: Message) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._outbox.append((message, future))
        self._wakeup.set()
        return future
