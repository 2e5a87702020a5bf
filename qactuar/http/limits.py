"""Limits the parser enforces on every request (RFC 9112 §2.3, §3, §5; RFC 6585 §5).

They are plain numbers so that this layer stays free of the config module;
the server builds one ``Limits`` from its ``Config`` and shares it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    #: Longest request target (URL) accepted; longer gets 414.
    max_url_bytes: int = 8190
    #: Largest header section (request line, fields and blank line, as sent);
    #: larger gets 431. Also bounds a chunked request's trailer section.
    max_header_bytes: int = 65536
    #: Most header fields in one request (and most trailer fields); more gets 431.
    max_header_count: int = 100
    #: Largest request body; larger gets 413. 0 means no limit.
    max_body_bytes: int = 0
