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


# realistic workloads (workloads.py) ------------------------------------------------

#: What ``upload`` echoes and ``download`` sends: 64 KiB and 1 MiB.
UPLOAD_BYTES = 64 * 1024
DOWNLOAD = b"x" * (1024 * 1024)
#: ``stream``: this many chunks of CHUNK each.
CHUNKS = 1000
CHUNK = b"0123456789abcdef" * 4


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def upload(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The request body back, whole (a 64 KiB POST in workloads.py)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    headers = [(b"content-type", b"application/octet-stream"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def download(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """1 MiB in one body message."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/octet-stream"),
               (b"content-length", str(len(DOWNLOAD)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": DOWNLOAD})


async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """CHUNKS body messages of CHUNK bytes each, without a length (chunked)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(CHUNKS - 1):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": CHUNK})

