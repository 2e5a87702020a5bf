"""Chunk-size lines read by our own grammar, handed to llhttp in canonical form.

RFC 9112 §7.1 and §7.1.1::

    chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
    last-chunk     = 1*("0") [ chunk-ext ] CRLF
    chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )

llhttp refuses the whitespace (BWS) the grammar allows after ``;`` and around
``=`` (``5; some; parameters=stuff``), and its one leniency near it
(``lenient_spaces_after_chunk_size``) accepts only whitespace before ``;``,
and also after a bare size (``5 \\r\\n``), which the grammar does not allow.
So ``ChunkedFraming`` reads each chunk-size line itself, strictly: hex digits
(at most 16), extensions as the grammar says (token or quoted-string values),
CRLF and nothing else (no bare LF or CR), a bounded length; it checks the CRLF
after each chunk's data; and it passes llhttp the same body with each size
line rewritten to ``<hex>\\r\\n``. Extensions carry no meaning for us (§7.1.1:
a recipient ignores those it does not understand), so nothing is lost, and
llhttp still counts the data, reads the trailers and ends the message.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import ProtocolError

__all__ = ["ChunkedFraming", "MAX_CHUNK_LINE"]

#: Longest chunk-size line (extensions included, CRLF excluded).
MAX_CHUNK_LINE: Final = 4096
_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED: Final = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_SIZE_LINE: Final = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*"
    % (_TOKEN, _TOKEN, _QUOTED)
)
_SIZE, _DATA, _DATA_END, _DONE = 0, 1, 2, 3


class _FramingError(ProtocolError):
    def __init__(self, error: ProtocolError, canonical: bytes) -> None:
        super().__init__(error.status, error.reason)
        #: The canonical bytes of what came before the bad ones.
        self.canonical = canonical


class ChunkedFraming:
    """Reads a chunked body up to the end of its last-chunk line.

    ``feed(data, pos)`` reads ``data`` from ``pos`` and returns ``(canonical,
    end)``: the bytes to give llhttp in place of what it read, and, once the
    last-chunk line is read, the position in ``data`` just after it (where
    the trailer section begins), else None (all of ``data`` was read). A
    ``ProtocolError`` it raises carries in ``canonical`` the bytes that came
    before the bad ones, to give llhttp first.
    """

    __slots__ = ("_state", "_line", "_remaining")

    def __init__(self) -> None:
        self._state = _SIZE
        self._line = b""
        self._remaining = 0

    def feed(self, data: bytes, pos: int = 0) -> tuple[bytes, int | None]:
        out: list[bytes | memoryview] = []
        try:
            end = self._feed(data, pos, out)
        except ProtocolError as exc:
            # what came before the bad bytes is still the body's
            raise _FramingError(exc, b"".join(out)) from None
        return b"".join(out), end

    def _feed(self, data: bytes, pos: int, out: list[bytes | memoryview]) -> int | None:
        size = len(data)
        view = memoryview(data)
        while pos < size:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, size - pos)
                out.append(view[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DATA_END:
                need = 2 - len(self._line)
                self._line += data[pos : pos + need]
                pos += need
                if not b"\r\n".startswith(self._line):
                    raise ProtocolError(400, "Missing CRLF after chunk data")
                if len(self._line) == 2:
                    self._line = b""
                    self._state = _SIZE
                    out.append(b"\r\n")
            else:  # _SIZE
                end = data.find(b"\n", pos, pos + MAX_CHUNK_LINE + 3)
                line = self._line + data[pos : size if end < 0 else end + 1]
                if len(line) > MAX_CHUNK_LINE + 2:
                    raise ProtocolError(400, "Chunk size line too long")
                if end < 0:
                    self._line = line
                    return None
                pos = end + 1
                self._line = b""
                match = _SIZE_LINE.fullmatch(line[:-2])
                if line[-2:-1] != b"\r" or match is None:
                    raise ProtocolError(400, "Invalid chunk size line")
                chunk_size = int(match.group(1), 16)
                out.append(b"%x\r\n" % chunk_size)
                if not chunk_size:
                    self._state = _DONE
                    return pos
                self._remaining = chunk_size
                self._state = _DATA
        return None
