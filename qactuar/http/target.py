"""The request target (RFC 9112 §3.2) and the host it names (RFC 9110 §7.2)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

import httptools

from .errors import ProtocolError

__all__ = ["INVALID_HOST", "decode_path", "split_target"]

#: Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): no path,
#: userinfo, whitespace or other delimiters.
INVALID_HOST: Final = re.compile(rb"[^A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]")


def split_target(url: bytes) -> tuple[bytes, bytes, bytes | None]:
    """Split a request target into (raw path, query string, authority or None)."""
    if b"#" in url:
        url = url.partition(b"#")[0]  # a fragment is never part of the target
    if url[:1] != b"/" and url != b"*":
        # absolute-form (RFC 9112 §3.2.2): the path and query, and the
        # authority, which replaces Host
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise ProtocolError(400, "Invalid request target") from None
        scheme, sep, rest = url.partition(b"://")
        authority = re.split(rb"[/?]", rest, maxsplit=1)[0]
        if (
            not sep
            or scheme.lower() not in (b"http", b"https")
            or not authority
            or INVALID_HOST.search(authority)
        ):
            # userinfo included (RFC 9110 §4.2.4: an error)
            raise ProtocolError(400, "Invalid request target")
        return parsed.path or b"/", parsed.query or b"", authority
    path, sep, query = url.partition(b"?")
    return path, query, None


def decode_path(raw_path: bytes) -> str:
    if b"%" not in raw_path:
        return raw_path.decode("latin-1")
    return unquote_to_bytes(raw_path).decode("utf-8", "replace")
