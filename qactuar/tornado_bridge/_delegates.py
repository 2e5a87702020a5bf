"""Message delegates the bridge puts around the application's own.

Tornado's HTTPServer wraps the application's `HTTPMessageDelegate` for
``decompress_request=True``; the bridge does the same, with the same limits.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable

from tornado import httputil
from tornado.util import GzipDecompressor


class _GzipRequestDelegate(httputil.HTTPMessageDelegate):
    """Decode a ``Content-Encoding: gzip`` request body before the app sees it."""

    def __init__(
        self,
        delegate: httputil.HTTPMessageDelegate,
        chunk_size: int,
        max_body_size: int,
    ) -> None:
        self._delegate = delegate
        self._chunk_size = chunk_size
        self._max_body_size = max_body_size
        self._decompressed_size = 0
        self._decompressor: GzipDecompressor | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if headers.get("Content-Encoding", "").lower() == "gzip":
            self._decompressor = GzipDecompressor()
            # The application only sees decoded data: rename the header, as
            # Tornado does.
            headers.add("X-Consumed-Content-Encoding", headers["Content-Encoding"])
            del headers["Content-Encoding"]
        return self._delegate.headers_received(start_line, headers)

    async def data_received(self, chunk: bytes) -> None:
        if self._decompressor is None:
            ret = self._delegate.data_received(chunk)
            if ret is not None:
                await ret
            return
        compressed = chunk
        while compressed:
            try:
                decompressed = self._decompressor.decompress(compressed, self._chunk_size)
            except zlib.error as exc:
                raise httputil.HTTPInputError(f"invalid gzip data: {exc}") from exc
            if decompressed:
                self._decompressed_size += len(decompressed)
                if self._decompressed_size > self._max_body_size:
                    raise httputil.HTTPInputError("decompressed body too large")
                ret = self._delegate.data_received(decompressed)
                if ret is not None:
                    await ret
            tail = self._decompressor.unconsumed_tail
            if not decompressed and len(tail) >= len(compressed):
                raise httputil.HTTPInputError(
                    "encountered unconsumed gzip data without making progress"
                )
            compressed = tail

    def finish(self) -> None:
        if self._decompressor is not None:
            try:
                self._decompressor.flush()
            except zlib.error as exc:
                # The wrapped delegate gets exactly one of finish() and
                # on_connection_close(), as under Tornado.
                self._delegate.on_connection_close()
                raise httputil.HTTPInputError(f"invalid gzip data: {exc}") from exc
        self._delegate.finish()

    def on_connection_close(self) -> None:
        self._delegate.on_connection_close()
