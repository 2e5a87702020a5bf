"""An app that tells what the server made of a proxied request (served as 'proxied:app').

- ``/whoami``: the scope's client, server and scheme as JSON;
- ``/upload``: the request body's SHA-256 and length;
- ``/stream``: ``first``, then ``last`` after ``?gap=S`` seconds (default 1);
- WebSocket (any path): the scope's client, server and scheme as a JSON text
  message, then an echo of every message until the client closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]


def _view(scope: Scope) -> dict[str, Any]:
    return {"client": scope["client"], "server": scope["server"], "scheme": scope["scheme"]}


async def _json(send: Any, data: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})


async def _websocket(scope: Scope, receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(_view(scope))})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    if scope["path"] == "/upload":
        digest = hashlib.sha256()
        size = 0
        more = True
        while more:
            message = await receive()
            body = message.get("body", b"")
            digest.update(body)
            size += len(body)
            more = message.get("more_body", False)
        await _json(send, {"sha256": digest.hexdigest(), "size": size})
    elif scope["path"] == "/stream":
        gap = float(parse_qs(scope["query_string"].decode()).get("gap", ["1"])[0])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await asyncio.sleep(gap)
        await send({"type": "http.response.body", "body": b"last\n"})
    else:
        await _json(send, _view(scope))
