"""The landing page of the bundled example config: a plain ASGI app."""

from __future__ import annotations

from typing import Any

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>qactuar</title></head>
<body>
<h1>qactuar is serving</h1>
<p>This page is a plain ASGI app mounted at <code>/</code> by <code>qactuar_config.json</code>.</p>
<ul>
<li><a href="/legacy/">/legacy/</a>: a Tornado application,
served through <code>qactuar.tornado_bridge</code></li>
<li><a href="/api/">/api/</a>: a Tonberry JSON API</li>
</ul>
</body></html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"] not in ("/", ""):
        body, status = b"Not Found\n", 404
        ctype = b"text/plain; charset=utf-8"
    else:
        body, status, ctype = PAGE, 200, b"text/html; charset=utf-8"
    headers = [(b"content-type", ctype)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
