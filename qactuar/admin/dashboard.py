"""The admin socket's dashboard: one page at ``/`` and its files at ``/assets/<name>``.

The admin app (``app.py``) hands ``GET /`` and ``GET /assets/*`` here; this
app serves only files from the package (``static/``), read once when it is
made, with no template and no build step. The page holds no secret, and the
admin app serves it and its assets without a token: it asks for the token in
a sign-in form, and its script (a file: the Content-Security-Policy allows no
inline script) sends it once to ``POST /login``, which sets the session
cookie and answers the session's secret, kept in ``sessionStorage`` and sent
as ``X-Qactuar-Session``; everything after goes through the admin API with
both.

Headers: a strict CSP (everything from this origin only, no inline script or
style, no framing, no form submission: the script sends the token, never a
native form post that would put it in a URL), ``nosniff``, ``DENY`` framing,
no referrer. The page is ``no-store``; the assets ``no-cache`` with an ETag, so
a browser revalidates them (a 304 costs no body) and an upgraded qactuar is
never shown with a stale script.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from ..asgi.types import Receive, Scope, Send

__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "Dashboard", "dashboard_app"]

#: The files under /assets/, with their content types; nothing else is served.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "config.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
PAGE = "index.html"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class _File:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type.encode()
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


class Dashboard:
    """The dashboard as an ASGI app; its files are read once, when it is made."""

    def __init__(self) -> None:
        static = resources.files(__package__ or "qactuar.admin") / "static"
        self.page = _File(static.joinpath(PAGE).read_bytes(), "text/html; charset=utf-8")
        self.assets = {name: _File(static.joinpath(name).read_bytes(), kind)
                       for name, kind in ASSETS.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # a websocket: not accepted, so the server closes it
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if path == "/":
            found: _File | None = self.page
            cache = b"no-store"
        elif path.startswith("/assets/"):
            found = self.assets.get(path[len("/assets/"):])
            cache = b"no-cache"
        else:
            found = None
            cache = b"no-store"
        method = scope["method"]
        if found is None:
            await _plain(send, 404, b"not found\n")
        elif method not in ("GET", "HEAD"):
            await _plain(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
        elif found.etag in _header(scope, b"if-none-match"):
            await _respond(send, 304, [(b"etag", found.etag), (b"cache-control", cache)], b"")
        else:
            headers = [(b"content-type", found.content_type),
                       (b"content-length", str(len(found.body)).encode()),
                       (b"etag", found.etag), (b"cache-control", cache)]
            await _respond(send, 200, headers, b"" if method == "HEAD" else found.body)


def _header(scope: Scope, name: bytes) -> bytes:
    return b",".join(value for key, value in scope.get("headers", ()) if key.lower() == name)


async def _plain(send: Any, status: int, body: bytes,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await _respond(send, status, headers + (extra or []), body)


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers + _SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


#: The app the admin app delegates ``GET /`` and ``GET /assets/*`` to.
dashboard_app = Dashboard()
