"""Small ASGI apps the tests serve, by 'module:attr' or directly."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with a JSON report of the scope and the whole request body."""
    if scope["type"] != "http":
        return
    body = b""
    events = 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message.get("body", b"")
        events += 1
        if not message.get("more_body"):
            break
    report = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "body": body.decode("latin-1"),
        "body_events": events,
        "pid": os.getpid(),
    }
    data = json.dumps(report).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sleeps for ?seconds (default 1) before answering."""
    if scope["type"] != "http":
        return
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    await asyncio.sleep(float(query.get("seconds", "1")))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


not_an_app = 42


async def slow_in_flight(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``slow``, printing ``in flight <pid>`` (flushed) once the request is in the app.

    A test waits for that line in the server's output to know the request is
    in flight, instead of sleeping.
    """
    if scope["type"] == "http":
        print(f"in flight {os.getpid()}", flush=True)
    await slow(scope, receive, send)
