"""The apps every benchmark serves: the same bytes from every server."""

from __future__ import annotations

from typing import Any

BODY = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Plain HTTP hello world."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """WebSocket echo: every message back as it came."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
