"""An app for the fork model's tests: each path misbehaves in its own way."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

#: Grows by 1 MiB per /leak request: in the fork model only the child grows.
LEAK: list[bytes] = []
#: Set by /set; in the fork model the next request must not see it.
STATE: dict[str, str] = {}


async def _reply(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/pid":
        await _reply(send, str(os.getpid()).encode())
    elif path == "/sleep":
        await asyncio.sleep(float(query or "1"))
        await _reply(send, b"slept " + str(os.getpid()).encode())
    elif path == "/block":  # blocks the child's event loop, as sync code does
        time.sleep(float(query or "1"))
        await _reply(send, b"blocked " + str(os.getpid()).encode())
    elif path == "/exit":
        os._exit(3)
    elif path == "/segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif path == "/rtsig":  # a real-time signal: no name in signal.Signals
        os.kill(os.getpid(), signal.SIGRTMIN + 2)
    elif path == "/half":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        os._exit(4)
    elif path == "/halfsleep":  # part of a response, then a hang (REQUEST_TIMEOUT's case)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(float(query or "60"))
    elif path == "/after":  # answers, then works on (query: seconds) before returning
        await _reply(send, b"answered")
        await asyncio.sleep(float(query or "1"))
    elif path == "/leak":
        LEAK.append(b"x" * (1024 * 1024))
        await _reply(send, str(len(LEAK)).encode())
    elif path == "/set":
        STATE["value"] = query
        await _reply(send, b"set")
    elif path == "/get":
        await _reply(send, STATE.get("value", "unset").encode())
    elif path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await _reply(send, body)
    else:
        await _reply(send, b"not found", 404)
