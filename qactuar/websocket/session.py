"""One WebSocket connection ⇄ one ASGI ``websocket`` application call.

Framing, masking, close handshakes, permessage-deflate and the message-size
limit are the ``websockets`` library's sans-I/O ``ServerProtocol``; this
module turns its frames into ASGI events and back (the rules of a message are
in ``messages.py``, the 101 response in ``handshake.py``). Why that library
and not wsproto: it is the faster of the two here (masking and UTF-8 in C),
its deflate decoder stops inflating at ``max_size`` (so a compression bomb
costs no memory), and it is the one most Python servers and clients are
tested against.

The session speaks to its connection only through ``write``, ``drain``,
``pause_reading``, ``resume_reading`` and ``close``, so every process model
serves WebSockets the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..asgi.cycle import APP_FAILURES, AppLost, ClientDisconnected
from ..asgi.extensions import COMPRESSION_KEY, PING_EVENTS_KEY
from ..asgi.types import ASGIApp, Message, Scope
from ..http import LocalProtocolError, RequestHead, Response, error_response
from ..logs import printable
from .failfast import TextScanner
from .handshake import accept_handshake
from .messages import MessageAssembler, MessageRefused, close_frame
from .pings import Pings, ping_payload

if TYPE_CHECKING:
    from ..admin.figures import Tally

__all__ = ["WebSocketOptions", "WebSocketSession"]

access_logger = logging.getLogger("qt_access")
exception_logger = logging.getLogger("qt_exception")

_CONNECTING, _OPEN, _CLOSED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    compression: bool = True
    max_message_bytes: int = 1024 * 1024
    max_queue: int = 32
    ping_interval: float = 20.0
    ping_timeout: float = 20.0


class WebSocketConnection(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def cycle_done(self, cycle: Any) -> None: ...


class WebSocketSession:
    """The ASGI side (``receive``/``send``) and the wire side (``feed``) of one WebSocket."""

    #: The process's admin figures (ADMIN_ENABLED, set by ``handoff``): the
    #: handshake's answer counts as a request (101, or the refusal's status)
    #: and an accepted session as an open WebSocket until its connection closes.
    figures: Tally | None = None

    def __init__(
        self,
        scope: Scope,
        head: RequestHead,
        conn: WebSocketConnection,
        options: WebSocketOptions,
        date: bytes,
        server: bytes,
    ) -> None:
        self.scope = scope
        self.head = head
        self.conn = conn
        self.options = options
        self._lines = (date, server)
        self.state = _CONNECTING
        self.protocol: ServerProtocol | None = None
        self.done = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._connect_sent = False
        self._messages: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._pending = b""
        self._assembler = MessageAssembler(options.max_message_bytes)
        self._scanner = TextScanner(compression=False)
        self._denial: Response | None = None
        #: HTTP status of a refused upgrade (denial response, 403, 500), for the log.
        self._status = 0
        self._pings = Pings(
            options.ping_interval, options.ping_timeout, self._send_ping, self._pong_missing
        )
        self._start = time.monotonic()

    # wire side -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        protocol = self.protocol
        if self.state == _CONNECTING or protocol is None:
            self._pending += data  # the client must wait for our 101; keep it
            if len(self._pending) > 65536:
                self.conn.pause_reading()
            return
        protocol.receive_data(data)
        for frame in protocol.events_received():
            if isinstance(frame, Frame):
                self._on_frame(frame)
        if self._scanner.invalid(data) and protocol.state is State.OPEN:
            protocol.fail(1007, "invalid UTF-8 in a text message")  # before the frame ends
        self._flush()
        if protocol.state is State.CLOSED:
            self._closed(self._received_code())

    def disconnect(self) -> None:
        self.connection_lost()

    def connection_lost(self) -> None:
        if self.protocol is not None and self.state == _OPEN:
            self.protocol.receive_eof()
        self._closed(self._received_code() if self.state == _OPEN else 1006)

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CLOSE:
            return  # handled by the protocol
        protocol = self.protocol
        assert protocol is not None
        if opcode is Opcode.PING or opcode is Opcode.PONG:
            # a PING is answered by the protocol; a PONG may answer the
            # keep-alive, in the close handshake too; the app hears of either
            # if it asked, while open
            event = self._pings.on_frame(frame)
            if event is not None and protocol.state is State.OPEN:
                self._deliver(event)
            return
        if protocol.state is not State.OPEN:
            return  # failed or closing: later frames of this read are void
        try:
            message = self._assembler.add(frame)
        except MessageRefused as exc:
            protocol.fail(exc.code, exc.reason)
            return
        if message is not None:
            self._deliver(message)

    def _deliver(self, message: Message) -> None:
        self._messages.append(message)
        if len(self._messages) >= self.options.max_queue:
            self.conn.pause_reading()
        self._wake()

    def _received_code(self) -> int:
        protocol = self.protocol
        if protocol is None:
            return 1006
        if protocol.close_rcvd is not None:
            self.close_reason = protocol.close_rcvd.reason
            return int(protocol.close_rcvd.code)
        if protocol.close_sent is not None:
            return int(protocol.close_sent.code)
        return 1006

    def _closed(self, code: int) -> None:
        if self.state == _CLOSED:
            return
        if self.state == _OPEN and self.figures is not None:
            self.figures.websockets -= 1
        self.state = _CLOSED
        self.close_code = code
        self._pings.stop()
        self.conn.close()
        self._wake()

    def _flush(self) -> None:
        assert self.protocol is not None
        for data in self.protocol.data_to_send():
            if data:
                self.conn.write(data)
            else:
                self.conn.close()  # the close handshake is over: end the stream

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def going_away(self) -> bool:
        """The server is stopping: start a 1001 close handshake if open."""
        if self._can_close():
            assert self.protocol is not None
            self.protocol.send_close(1001, "server shutting down")
            self._flush()
            return True
        return self.state == _OPEN  # closing already: its handshake is under way

    def _can_close(self) -> bool:
        """Open, and no close frame sent yet (by the app or after an error)."""
        protocol = self.protocol
        return self.state == _OPEN and protocol is not None and protocol.state is State.OPEN

    # pings (pings.py) ------------------------------------------------------------

    def _send_ping(self, data: bytes) -> bool:
        """A keep-alive ping, while open or in the close handshake; False if none went out."""
        protocol = self.protocol
        if self.state != _OPEN or protocol is None or protocol.eof_sent:
            return False
        if protocol.state is not State.OPEN and protocol.state is not State.CLOSING:
            return False
        protocol.send_ping(data)
        self._flush()
        return True

    def _pong_missing(self) -> None:
        if self.state == _OPEN and self.protocol is not None:
            self.protocol.fail(1011, "keepalive ping timeout")
            self._flush()
            self._closed(1006)

    # ASGI side -------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if isinstance(exc, AppLost):  # logged where it was lost (a fork child)
                self._app_ended(failed=True, lost=exc)
                return
            # sys.exit() and KeyboardInterrupt from app code fail this session
            # alone (1011), as HTTPCycle.run treats them; CancelledError goes on
            if isinstance(exc, APP_FAILURES) and not (
                isinstance(exc, ClientDisconnected) and self.state == _CLOSED
            ):
                exception_logger.error(
                    "Exception in ASGI websocket application for %s",
                    printable(self.head.path),
                    exc_info=exc,
                )
            self._app_ended(failed=True)
            if not isinstance(exc, APP_FAILURES):
                raise
        else:
            self._app_ended(failed=False)

    def _app_ended(self, failed: bool, lost: AppLost | None = None) -> None:
        if self.state == _CONNECTING and self._denial is None:
            if lost is not None:
                self._reject(lost.status, lost.reason)
            else:
                self._reject(
                    500 if failed else 403, "Internal Server Error" if failed else "Forbidden"
                )
        elif self._denial is not None and not self._denial.complete:
            self.conn.close()
        elif self._can_close():
            assert self.protocol is not None
            self.protocol.send_close(1011 if failed else 1000)
            self._flush()
        self.done = True
        self._log()
        self.conn.cycle_done(self)

    def _request_line(self) -> str:
        client = self.scope.get("client")
        head = self.head
        target = head.raw_path.decode("latin-1")
        if head.query_string:
            target += "?" + head.query_string.decode("latin-1")
        return (
            f'{client[0]}:{client[1]} - "WebSocket {target}"'
            if client
            else (f'- - "WebSocket {target}"')
        )

    def _log_upgrade(self) -> None:
        """One line as the connection upgrades (a WebSocket may stay open for hours)."""
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info("%s 101", self._request_line())

    def _log(self) -> None:
        """One line as it ends: close code and duration, or the refusal's status."""
        if not access_logger.isEnabledFor(logging.INFO):
            return
        if self.protocol is not None:
            # the close handshake may still be under way: the code sent is the code
            code = self.close_code if self.close_code is not None else self._received_code()
            outcome = f"closed {code}"
        elif self._status:
            outcome = str(self._status)
        else:
            outcome = f"closed {self.close_code or 1006}"  # the client left before accept
        access_logger.info(
            "%s %s %.1fms",
            self._request_line(),
            outcome,
            (time.monotonic() - self._start) * 1000,
        )

    def _record(self, status: int, sent: int = 0) -> None:
        """The handshake was answered ``status`` (admin figures)."""
        figures = self.figures
        if figures is not None:
            head = self.head
            figures.record(
                head.path, head.method, status, time.monotonic() - self._start, 0, sent
            )

    def _reject(self, status: int, reason: str) -> None:
        self._status = status
        self._record(status)
        self.state = _CLOSED
        self.conn.write(error_response(status, reason, *self._lines))
        self.conn.close()

    async def receive(self) -> Message:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        loop = asyncio.get_running_loop()
        while not self._messages and self.state != _CLOSED:
            self._waiter = loop.create_future()
            await self._waiter
        if self._messages:
            message = self._messages.popleft()
            if len(self._messages) < self.options.max_queue // 2 + 1:
                self.conn.resume_reading()
            return message
        return {
            "type": "websocket.disconnect",
            "code": self.close_code or 1006,
            "reason": self.close_reason,
        }

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send" or kind == "websocket.ping":
            if self.state != _OPEN or self.protocol is None:
                if self.state == _CLOSED:
                    raise ClientDisconnected("WebSocket closed")
                raise RuntimeError(f"ASGI sent {kind!r} before 'websocket.accept'")
            if self.protocol.state is not State.OPEN:
                # a close frame went out (the app's, or ours after a protocol error)
                raise ClientDisconnected("WebSocket closing")
            if kind == "websocket.ping":  # the qactuar.websocket.ping extension
                self.protocol.send_ping(ping_payload(message))
            elif (text := message.get("text")) is not None:
                self.protocol.send_text(text.encode("utf-8"))
            else:
                self.protocol.send_binary(message.get("bytes") or b"")
            self._flush()
            await self.conn.drain()
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            if self.state == _CONNECTING:
                if self._denial is not None:
                    raise RuntimeError("ASGI sent 'websocket.close' during a denial response")
                self._reject(403, "Forbidden")
            elif self._can_close():
                assert self.protocol is not None
                code, reason = close_frame(message)
                self.protocol.send_close(code, reason)
                self._flush()
        elif kind in ("websocket.http.response.start", "websocket.http.response.body"):
            self._deny(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in a websocket cycle")

    def _accept(self, message: Message) -> None:
        gone = getattr(self.conn, "peer_gone", None)  # (its FIN, maybe not read yet)
        if self.state == _CLOSED and self.protocol is None and self._denial is None or (
            self.state == _CONNECTING and gone is not None and gone()
        ):
            # the client left before the app decided (ASGI: an OSError on send)
            raise ClientDisconnected("the client left before the WebSocket was accepted")
        if self.state != _CONNECTING or self._denial is not None:
            raise RuntimeError("ASGI sent 'websocket.accept' twice or after a close")
        date, server = self._lines
        protocol, response = accept_handshake(
            self.head,
            message.get("subprotocol"),
            message.get("headers") or (),
            # the app may decline it for this connection (qactuar.websocket.compression)
            compression=self.options.compression and message.get(COMPRESSION_KEY) is not False,
            max_message_bytes=self.options.max_message_bytes,
            date=date,
            server=server,
        )
        self._record(response.status_code)
        if response.status_code != 101:
            self.protocol = protocol
            protocol.send_response(response)
            self._flush()
            self._closed(1006)
            return
        protocol.send_response(response)
        self.protocol = protocol
        self._scanner = TextScanner(compression=bool(protocol.extensions))
        self.state = _OPEN
        if self.figures is not None:
            self.figures.websockets += 1
        self._flush()
        self._log_upgrade()
        self._pings.events = bool(message.get(PING_EVENTS_KEY))
        self._pings.start()
        pending, self._pending = self._pending, b""
        self.conn.resume_reading()
        if pending:
            self.feed(pending)

    def _deny(self, message: Message) -> None:
        if self.state == _CLOSED and self.protocol is None and self._denial is None:
            raise ClientDisconnected("the client left before the denial response")
        if self.state != _CONNECTING:
            raise RuntimeError("A WebSocket denial response must come before 'websocket.accept'")
        try:
            if message["type"] == "websocket.http.response.start":
                if self._denial is not None:
                    raise RuntimeError("ASGI sent 'websocket.http.response.start' twice")
                denial = Response("GET", "1.1", False, *self._lines)
                # checked before it counts as begun: a bad field gets the 500
                denial.start(message["status"], message.get("headers", ()), message.get("reason"))
                self._denial = denial
                self._status = message["status"]
                return
            if self._denial is None:
                raise RuntimeError("'websocket.http.response.body' before its start")
            more = message.get("more_body", False)
            self.conn.write(self._denial.body(message.get("body", b""), more))
        except LocalProtocolError as exc:
            raise RuntimeError(str(exc)) from None
        if not more:
            self._record(self._status, self._denial.body_bytes)
            self.state = _CLOSED
            self.close_code = 1006
            self.conn.close()
