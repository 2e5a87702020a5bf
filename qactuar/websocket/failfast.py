"""Invalid UTF-8 fails a WebSocket as its bytes arrive, even in the middle of a frame.

RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
finds that the byte stream is not, in fact, a valid UTF-8 stream, that
endpoint MUST _Fail the WebSocket Connection_" — and Autobahn 6.4.3/6.4.4
check that a server does so *fast*: a frame whose payload trickles in, with
the invalid bytes first and the rest never coming. The ``websockets`` parser
hands over whole frames only, so ``TextScanner`` follows the client's frames
on the wire alongside it: it reads each frame header, unmasks the payload of
an uncompressed text message as it arrives and runs it through an
incremental UTF-8 decoder. Compressed messages are checked once inflated
(``MessageAssembler``); anything the parser refuses (unmasked frames,
reserved opcodes) is the parser's to fail, and the scanner stops.
"""

from __future__ import annotations

import codecs

from websockets.utils import apply_mask

__all__ = ["TextScanner"]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class TextScanner:
    """Fed every byte a client sends after the handshake; says when text turns invalid."""

    def __init__(self, compression: bool) -> None:
        self.compression = compression
        self._head = b""
        self._left = 0  # payload bytes of the current frame still to come
        self._mask = b""
        self._offset = 0  # payload bytes of the current frame seen so far
        self._check = False  # the current frame's payload is text to validate
        self._fin = False
        self._text: codecs.IncrementalDecoder | None = None  # in an uncompressed text message
        self._done = False

    def invalid(self, data: bytes) -> bool:
        """True once the text seen so far, ``data`` included, cannot be valid UTF-8."""
        if self._done:
            return False
        view = memoryview(data)
        while view:
            if self._left:
                take = view[: self._left]
                view = view[len(take):]
                if self._check and self._payload(bytes(take)):
                    self._done = True
                    return True
                self._left -= len(take)
                self._offset += len(take)
                if not self._left:
                    self._frame_end()
                continue
            need = self._header_size()
            missing = need - len(self._head)
            self._head += bytes(view[:missing])
            view = view[missing:]
            if len(self._head) == need and self._header_size() == need:
                if not self._start_frame():
                    self._done = True  # the parser will refuse this frame
                    return False
        return False

    def _header_size(self) -> int:
        if len(self._head) < 2:
            return 2
        length = self._head[1] & 0x7F
        return 2 + (2 if length == 126 else 8 if length == 127 else 0) + 4

    def _start_frame(self) -> bool:
        head, self._head = self._head, b""
        b0, b1 = head[0], head[1]
        if not b1 & 0x80:
            return False  # unmasked
        length = b1 & 0x7F
        if length >= 126:
            length = int.from_bytes(head[2:-4], "big")
        opcode, rsv1 = b0 & 0x0F, bool(b0 & 0x40)
        self._fin = bool(b0 & 0x80)
        if opcode == 1:
            compressed = rsv1 and self.compression
            self._text = None if compressed else _utf8_decoder()
        elif opcode == 2:
            self._text = None
        elif opcode != 0 and opcode < 8:
            return False  # reserved opcode
        self._check = opcode in (0, 1) and self._text is not None
        self._mask, self._offset, self._left = head[-4:], 0, length
        if not length:
            self._frame_end()
        return True

    def _payload(self, masked: bytes) -> bool:
        shift = self._offset % 4
        key = self._mask[shift:] + self._mask[:shift]
        assert self._text is not None
        try:
            self._text.decode(apply_mask(masked, key))
        except UnicodeDecodeError:
            return True
        return False

    def _frame_end(self) -> None:
        if self._check and self._fin:
            self._text = None  # the message is whole: the parser checks its end
        self._check = False
