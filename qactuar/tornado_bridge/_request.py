"""From an ASGI HTTP scope to what Tornado's HTTP1Connection would have parsed.

Tornado's `HTTPServerRequest` is built by the application's own delegate
from a `RequestStartLine`, an `HTTPHeaders` and the connection's
``context`` (peer address and scheme).  This module produces those three
from the scope, so that routing, argument decoding and ``remote_ip`` work
exactly as under Tornado's HTTPServer.

URLs: the scope's ``path`` is the full, decoded path and ``root_path`` the
mount prefix (current ASGI practice, as Starlette and Hypercorn read it).
Tornado routes on the raw, still percent-encoded path, so the request URI is
built from ``raw_path`` whenever it agrees with ``path``; otherwise the path is
re-encoded.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote

from tornado import httputil, netutil

from ._options import _ServerOptions
from ._types import Scope

# Characters left as they are when a decoded path has to be re-encoded
# (RFC 3986 pchar plus "/"), so Tornado's unquoting of path arguments
# gives back the decoded path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class _RequestContext:
    """What Tornado's `_HTTPRequestContext` is to HTTPServer, read from a scope.

    `HTTPServerRequest` copies ``remote_ip`` and ``protocol`` from here.
    """

    def __init__(
        self,
        scope: Scope,
        protocol: str | None = None,
        trusted_downstream: list[str] | None = None,
    ) -> None:
        client = scope.get("client")
        self.address: tuple[str, int] | None = tuple(client) if client else None  # type: ignore[assignment]
        # An ASGI server on a Unix socket has no client address; Tornado
        # fakes one the same way.
        self.remote_ip: str = str(client[0]) if client else "0.0.0.0"
        self.address_family = socket.AF_INET6 if ":" in self.remote_ip else socket.AF_INET
        scheme = scope.get("scheme", "http")
        self.protocol: str = protocol or ("https" if scheme in ("https", "wss") else "http")
        self.trusted_downstream = set(trusted_downstream or [])
        # The raw (percent-encoded) form of root_path, and how much of it is
        # still at the front of the path Tornado sees ("" when stripped).
        self.raw_root_path = ""
        self.route_prefix = ""

    def __str__(self) -> str:
        return self.remote_ip

    def apply_xheaders(self, headers: httputil.HTTPHeaders) -> None:
        """Rewrite ``remote_ip`` and ``protocol`` as HTTPServer(xheaders=True) does."""
        forwarded = headers.get("X-Forwarded-For", self.remote_ip)
        # Skip trusted downstream hosts in the X-Forwarded-For list.
        ip = forwarded
        for ip in (cand.strip() for cand in reversed(forwarded.split(","))):
            if ip not in self.trusted_downstream:
                break
        ip = headers.get("X-Real-Ip", ip)
        if netutil.is_valid_ip(ip):
            self.remote_ip = ip
        proto_header = headers.get("X-Scheme", headers.get("X-Forwarded-Proto", self.protocol))
        if proto_header:
            proto_header = proto_header.split(",")[-1].strip()
        if proto_header in ("http", "https"):
            self.protocol = proto_header


@dataclass(frozen=True)
class _RequestHead:
    start_line: httputil.RequestStartLine
    headers: httputil.HTTPHeaders
    raw_root_path: str
    # What is left of the mount at the front of the path Tornado sees.
    route_prefix: str
    # What links made by reverse_url/static_url need in front of them.
    link_prefix: str


def _raw_prefix(raw_path: str, root_path: str) -> str | None:
    """The part of ``raw_path`` that spells ``root_path``, or None if it doesn't."""
    if not root_path:
        return ""
    segments = root_path.rstrip("/").count("/") + 1
    prefix = "/".join(raw_path.split("/")[:segments])
    if unquote(prefix) == root_path.rstrip("/"):
        return prefix
    return None


def read_head(scope: Scope, strip_root_path: bool) -> _RequestHead:
    """Build the start line and headers Tornado would have read off the wire."""
    root_path: str = scope.get("root_path", "")
    path: str = scope["path"]
    # Older servers and routers give a path relative to root_path.
    full_path = path if path.startswith(root_path) else root_path + path

    raw_full: str | None = None
    raw_path = scope.get("raw_path")
    if raw_path is not None:
        candidate = raw_path.decode("latin-1")
        if unquote(candidate) == full_path:
            raw_full = candidate
    if raw_full is None:
        raw_full = quote(full_path, safe=_PATH_SAFE)

    raw_root = _raw_prefix(raw_full, root_path)
    if raw_root is None:
        raw_root = quote(root_path.rstrip("/"), safe=_PATH_SAFE)
        if not raw_full.startswith(raw_root):
            raw_root = ""
    if strip_root_path and raw_root:
        target = raw_full[len(raw_root) :] or "/"
        route_prefix = ""
    else:
        target = raw_full
        route_prefix = raw_root

    query = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")

    version = "HTTP/" + scope.get("http_version", "1.1")
    headers = httputil.HTTPHeaders()
    for name, value in scope.get("headers", ()):
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    if "Host" not in headers and version != "HTTP/1.0":
        # HTTP/2 and HTTP/3 carry the host as :authority, which some ASGI
        # servers do not copy into the headers.
        server = scope.get("server")
        if server and server[1] is not None:
            headers["Host"] = f"{server[0]}:{server[1]}"
        elif server:
            headers["Host"] = str(server[0])
    # A websocket scope has no method: its handshake is a GET.
    start_line = httputil.RequestStartLine(scope.get("method", "GET"), target, version)
    link_prefix = raw_root if strip_root_path else ""
    return _RequestHead(start_line, headers, raw_root, route_prefix, link_prefix)


def read_request(scope: Scope, options: _ServerOptions) -> tuple[_RequestHead, _RequestContext]:
    """The request head and the connection context for one scope."""
    head = read_head(scope, options.strip_root_path)
    context = _RequestContext(scope, options.protocol, list(options.trusted_downstream))
    context.raw_root_path = head.raw_root_path
    context.route_prefix = head.route_prefix
    if options.xheaders:
        context.apply_xheaders(head.headers)
    return head, context
