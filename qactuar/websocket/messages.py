"""WebSocket frames ⇄ ASGI messages, with no connection, loop or timer.

``MessageAssembler`` turns the data frames the ``websockets`` library hands
over into ASGI ``websocket.receive`` messages, holding each message to
``WS_MAX_MESSAGE_BYTES`` and a text message to valid UTF-8 (RFC 6455 §8.1).
A fragment counts with the smallest header a client can send it with
(``FRAGMENT_OVERHEAD``), so a message cut into a million 1-byte fragments,
or an endless run of empty ones, meets the limit as its bytes on the wire
would; the fragments are gathered in one buffer, never one object each.

``ServerProtocol`` is the library's, but for a close frame that comes
between the fragments of a message (RFC 6455 §5.4 lets control frames
come there): the library fails the connection with 1002, where the close
ends the connection cleanly and the unfinished message is dropped
(Autobahn case 7.1.5).

``close_frame`` turns an app's ``websocket.close`` into what a close frame
can carry (§5.5.1, §7.4).

They live apart from ``session.py`` so that the rules of a message can be
read, and tested, with frames alone, while the session keeps what needs
the connection: state, flow control, pings and the log.
"""

from __future__ import annotations

import codecs

from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol as _LibraryProtocol

from ..asgi.types import Message

__all__ = [
    "FRAGMENT_OVERHEAD",
    "MessageAssembler",
    "MessageRefused",
    "ServerProtocol",
    "close_frame",
]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

#: Bytes a fragment counts beyond its payload: a client frame's smallest
#: header (2 bytes, and the 4-byte mask every client frame carries).
FRAGMENT_OVERHEAD = 6


class MessageRefused(Exception):
    """A received message the connection must fail over, with the close code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class MessageAssembler:
    """Data frames (TEXT, BINARY, CONT) in, whole ``websocket.receive`` messages out.

    Control frames are the protocol's business and never reach ``add``.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._size = 0
        self._text = False
        self._utf8: codecs.IncrementalDecoder | None = None

    def add(self, frame: Frame) -> Message | None:
        """The message ``frame`` completes, or None while more fragments are due.

        Raises ``MessageRefused`` with 1009 for a message over the limit (its
        fragments counted with ``FRAGMENT_OVERHEAD`` each) and 1007 for
        invalid UTF-8 in a text message.
        """
        opcode = frame.opcode
        data = frame.data
        if opcode is not Opcode.CONT:
            text = opcode is Opcode.TEXT
            if frame.fin:  # a whole message in one frame: the common case
                if len(data) > self.max_message_bytes:
                    raise MessageRefused(1009, "message too big")
                if text:
                    try:
                        return {"type": "websocket.receive", "text": str(data, "utf-8")}
                    except UnicodeDecodeError:
                        raise MessageRefused(1007, "invalid UTF-8 in a text message") from None
                return {"type": "websocket.receive", "bytes": bytes(data)}
            self._buf = bytearray()
            self._size = 0
            self._text = text
            self._utf8 = _utf8_decoder() if text else None
        self._size += len(data) + FRAGMENT_OVERHEAD
        if self._size > self.max_message_bytes + FRAGMENT_OVERHEAD:
            # (a message in one fragment counts its payload alone)
            self._buf = bytearray()
            raise MessageRefused(1009, "message too big")
        if self._utf8 is not None:
            # fragments are checked as they come: bad UTF-8 fails fast (§8.1);
            # the text is decoded once, whole, at the end
            try:
                self._utf8.decode(data, frame.fin)
            except UnicodeDecodeError:
                self._buf = bytearray()
                raise MessageRefused(1007, "invalid UTF-8 in a text message") from None
        self._buf += data
        if not frame.fin:
            return None
        buf, self._buf = self._buf, bytearray()
        self._utf8 = None
        if self._text:
            return {"type": "websocket.receive", "text": buf.decode("utf-8")}
        return {"type": "websocket.receive", "bytes": bytes(buf)}


def close_frame(message: Message) -> tuple[int, str]:
    """The code and reason of an app's ``websocket.close``, as a close frame can carry them.

    A reason longer than a control frame allows (123 bytes of UTF-8) is cut at
    a character boundary; a code no endpoint may send (RFC 6455 §7.4) is the
    app's error, reported as such.
    """
    code = message.get("code")
    code = 1000 if code is None else code
    if not (
        code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
        or 3000 <= code <= 4999
    ):
        raise RuntimeError(
            f"ASGI 'websocket.close' with code {code!r}, which no endpoint may send (RFC 6455 §7.4)"
        )
    reason = message.get("reason") or ""
    encoded = reason.encode("utf-8")
    if len(encoded) > 123:
        reason = encoded[:123].decode("utf-8", errors="ignore")
    return code, reason


class ServerProtocol(_LibraryProtocol):
    """The ``websockets`` server protocol; a close between fragments is a clean close."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            # the unfinished message is dropped (§5.4 allows a control frame
            # here; §1.4: data after a close is discarded); the attribute
            # is ``current_size`` since websockets 14, ``cur_size`` before
            for name in ("current_size", "cur_size"):
                if getattr(self, name, None) is not None:
                    setattr(self, name, None)
        super().recv_frame(frame)
