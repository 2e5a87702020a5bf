"""Ping and pong frames of one WebSocket: the server's keep-alive and the app's events.

Keep-alive (``WS_PING_INTERVAL``/``WS_PING_TIMEOUT``): the server pings an
open WebSocket every interval and fails it (1011) when no pong to its ping
arrives within the timeout. A client's ping is answered by the protocol
itself (RFC 6455 §5.5.2), whatever the application does.

The ``qactuar.websocket.ping`` extension (listed in every websocket scope):
the application may send ``{"type": "websocket.ping", "bytes": b"..."}``
(at most 125 bytes: a ping frame with that payload); and an application that
asks for them with ``"qactuar.ping_events": True`` in ``websocket.accept``
receives ``{"type": "websocket.ping", "bytes": ...}`` for every ping and
``{"type": "websocket.pong", "bytes": ...}`` for every pong the client
sends, in order with its messages. Only on request, so a plain ASGI app,
which knows no such event type, never gets one; and never for a pong that
answers the server's own keep-alive ping (the app did not cause it: the
server consumes it).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable

from websockets.frames import Frame, Opcode

from ..asgi.types import Message

__all__ = ["Pings", "ping_payload"]

#: RFC 6455 §5.5: a control frame's payload is at most 125 bytes.
MAX_PING_PAYLOAD = 125


def ping_payload(message: Message) -> bytes:
    """The payload of the app's ``websocket.ping``, checked; RuntimeError if unusable."""
    data = message.get("bytes", b"")
    if data is None:
        data = b""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RuntimeError(f"'websocket.ping' bytes must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_PING_PAYLOAD:
        raise RuntimeError(f"'websocket.ping' payload over {MAX_PING_PAYLOAD} bytes")
    return data


class Pings:
    """The ping side of one open WebSocket."""

    __slots__ = ("_interval", "_timeout", "_send", "_fail", "_ping", "_pong", "_sent", "events")

    def __init__(
        self,
        interval: float,
        timeout: float,
        send_ping: Callable[[bytes], bool],
        fail: Callable[[], None],
    ) -> None:
        self._interval = interval
        self._timeout = timeout
        self._send = send_ping
        self._fail = fail
        self._ping: asyncio.TimerHandle | None = None
        self._pong: asyncio.TimerHandle | None = None
        #: Payloads of the keep-alive pings not answered yet (one unless
        #: WS_PING_TIMEOUT is 0, when pings go on unanswered): their pongs are ours.
        self._sent: deque[bytes] = deque(maxlen=4)
        #: The app asked for ping/pong events (``qactuar.ping_events``).
        self.events = False

    def start(self) -> None:
        """Schedule the next keep-alive ping, if the server pings."""
        if self._interval:
            self._ping = asyncio.get_running_loop().call_later(self._interval, self._keepalive)

    def stop(self) -> None:
        for handle in (self._ping, self._pong):
            if handle is not None:
                handle.cancel()
        self._ping = self._pong = None

    def _keepalive(self) -> None:
        self._ping = None
        payload = os.urandom(4)
        if not self._send(payload):
            return  # the connection is going: no ping, so no pong to wait for
        self._sent.append(payload)
        if self._timeout:
            loop = asyncio.get_running_loop()
            self._pong = loop.call_later(self._timeout, self._missing)
        else:
            self.start()  # no pong awaited: the next ping is due all the same

    def _missing(self) -> None:
        self._pong = None
        self._fail()

    def on_frame(self, frame: Frame) -> Message | None:
        """A ping or pong frame from the client: the app's event for it, if it asked.

        A pong to the server's own keep-alive ping is the server's: no event.
        """
        if frame.opcode is Opcode.PONG:
            data = bytes(frame.data)
            if data in self._sent:
                self._sent.remove(data)
                if self._pong is not None:
                    self._pong.cancel()
                    self._pong = None
                    self.start()
                return None
            kind = "websocket.pong"
        else:
            kind = "websocket.ping"  # answered by the protocol already
        if not self.events:
            return None
        return {"type": kind, "bytes": bytes(frame.data)}

