"""The bridge's per-app options: what Tornado takes as `HTTPServer` arguments."""

from __future__ import annotations

from dataclasses import dataclass

# Tornado's IOStream default max_buffer_size, the default body limit there.
DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 65536


@dataclass(frozen=True)
class _ServerOptions:
    strip_root_path: bool = False
    xheaders: bool = False
    trusted_downstream: tuple[str, ...] = ()
    protocol: str | None = None
    decompress_request: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    body_timeout: float | None = None
