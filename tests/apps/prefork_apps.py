"""Apps for the prefork model's tests (served by 'prefork_apps:attr').

``app`` answers with the pid of the worker that served it; ``/slow?seconds=N``
sleeps on the loop first, ``/block`` blocks the worker's loop for a minute.
On a websocket it echoes text messages until the client leaves.
Its lifespan appends ``startup <pid>`` / ``shutdown <pid>`` to
$QT_LIFESPAN_FILE when that is set.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


def _note(line: str) -> None:
    path = os.environ.get("QT_LIFESPAN_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{line} {os.getpid()}\n")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].split(".")[-1]
            _note(kind)
            await send({"type": message["type"] + ".complete"})
            if kind == "shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
        await asyncio.sleep(float(query.get("seconds", "1")))
    elif scope["path"] == "/block":
        time.sleep(60)
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Every worker's lifespan startup fails."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await app(scope, receive, send)


async def marked(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``app``, printing ``in flight <path> <pid>`` (flushed) once an HTTP request is in it.

    A test waits for that line in the server's output to know a request is
    in flight, instead of sleeping.
    """
    if scope["type"] == "http":
        print(f"in flight {scope['path']} {os.getpid()}", flush=True)
    await app(scope, receive, send)
