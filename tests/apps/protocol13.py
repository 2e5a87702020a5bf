"""Issue 13's protocol probes: an echo of what the app sees, and apps that inject headers.

``/echo`` answers ``<method> <path> host=<Host as the app sees it> body=<body>``.
``/inject`` (HTTP) and the WebSocket paths ``/ws-accept`` and ``/ws-deny`` pass a
header name with CR/LF in it, as an app echoing user input into a header would.
"""

from __future__ import annotations

from typing import Any

EVIL = [(b"x-a\r\nset-cookie", b"evil")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        for _ in range(2):
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if scope["path"] == "/ws-accept":
            await send({"type": "websocket.accept", "headers": EVIL})
        else:
            await send({"type": "websocket.http.response.start", "status": 403,
                        "headers": EVIL})
            await send({"type": "websocket.http.response.body", "body": b"no"})
        return
    body = b""
    for _ in range(10_000):
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/inject":
        await send({"type": "http.response.start", "status": 200, "headers": EVIL})
        await send({"type": "http.response.body", "body": b"injected"})
        return
    host = dict(scope["headers"]).get(b"host", b"-")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body",
                "body": b"%s %s host=%s body=%s" % (
                    scope["method"].encode(), scope["path"].encode(), host, body)})
