"""The body of an Upgrade request, which llhttp would hand over as the new protocol's bytes.

RFC 9110 §7.8: the protocol switch happens after the request, body included;
so the body is parsed as HTTP (by Content-Length, or by a second httptools
parser for chunked framing) and only the bytes after it are the new
protocol's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import httptools

from .chunked import ChunkedFraming
from .errors import ProtocolError

if TYPE_CHECKING:
    from .parser import RequestParser

__all__ = ["UpgradeBody"]


class UpgradeBody:
    """The body of an Upgrade request, after llhttp has stopped at its head.

    ``feed`` passes body pieces and then the end of the message to the
    ``RequestParser``'s callbacks and returns the bytes that follow the body
    (the new protocol's), or None while the body is incomplete. After a
    chunked body those bytes cannot be told apart and b"" is returned: no
    protocol that is switched to after a request body is spoken here.
    """

    __slots__ = ("_owner", "_remaining", "_chunks", "_framing", "_started", "_done")

    _CHUNKED_HEAD: Final = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )

    def __init__(self, owner: RequestParser, chunked: bool, content_length: int) -> None:
        self._owner = owner
        self._remaining = content_length
        self._done = False
        #: The synthetic head is parsed: fields from now on are trailers.
        self._started = False
        self._chunks: Any = None
        #: Reads the chunk-size lines (llhttp refuses some valid ones).
        self._framing: ChunkedFraming | None = None
        if chunked:
            self._framing = ChunkedFraming()
            self._chunks = httptools.HttpRequestParser(self)
            self._chunks.feed_data(self._CHUNKED_HEAD)

    def feed(self, data: bytes) -> bytes | None:
        chunks = self._chunks
        if chunks is not None:
            framing = self._framing
            if framing is not None:
                canonical, end = framing.feed(data)
                if end is not None:
                    self._framing = None
                    canonical += data[end:]  # the trailers: llhttp reads them
                data = canonical
            try:
                chunks.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                if isinstance(exc.__context__, ProtocolError):
                    raise exc.__context__ from None
                raise
            except httptools.HttpParserError as exc:
                if not self._done:
                    message = str(exc.args[0]) if exc.args else "Malformed request"
                    raise ProtocolError(400, message) from None
            return b"" if self._done else None
        take = data[: self._remaining]
        if take:
            self._remaining -= len(take)
            self._owner.on_body(take)
        if self._remaining:
            return None
        self._owner.on_message_complete()
        return data[len(take) :]

    # callbacks of the chunked sub-parser
    def on_headers_complete(self) -> None:
        self._started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._started:
            self._owner.on_header(name, value)  # a trailer: counted, not kept

    def on_chunk_header(self) -> None:
        self._owner.on_chunk_header()

    def on_chunk_complete(self) -> None:
        self._owner.on_chunk_complete()

    def on_body(self, body: bytes) -> None:
        self._owner.on_body(body)

    def on_message_complete(self) -> None:
        self._done = True
        self._owner.on_message_complete()
