"""Apps for the admin figures tests (tests/test_admin_figures_models.py), mounted
as APPS ``/api`` and ``/blog`` (no root mount: any other path is the router's 404).

- ``GET <route>/hello``: ``hello`` (5 bytes); ``POST <route>/echo``: the body back;
- ``GET <route>/hold``: creates ``$FIGURES_DIR/held-<pid>``, answers once
  ``$FIGURES_DIR/release`` exists (at most 30 s): a request in flight;
- ``GET <route>/status/<n>``: an empty answer with status ``n``;
- a WebSocket at any path: accepted, open until the client closes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

Scope = dict[str, Any]


async def _answer(send: Any, status: int, body: bytes) -> None:
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"text/plain")]}
    if status > 599:  # an app's own code: with a reason phrase (qactuar's extension)
        start["reason"] = "Own Code"
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def _until_exists(path: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.01)):
        if os.path.exists(path):
            return
        await asyncio.sleep(0.01)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    path = scope["path"][len(scope["root_path"]):]
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await _answer(send, 200, body)
    elif path == "/hold":
        folder = os.environ["FIGURES_DIR"]
        open(os.path.join(folder, f"held-{os.getpid()}"), "w").close()
        await _until_exists(os.path.join(folder, "release"))
        await _answer(send, 200, b"released")
    elif path.startswith("/status/"):
        await _answer(send, int(path.rsplit("/", 1)[1]), b"")
    else:
        await _answer(send, 200, b"hello")


api = app
blog = app
