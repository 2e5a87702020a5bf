"""Apps for tests/test_conventions.py.

``app``: ``/hold?FLAG`` answers ``in`` at once, then waits until the file
``FLAG`` exists (at most 30 s) and ends with ``done`` (the test decides
when it leaves, so a test holds requests in flight without sleeping; no
request body is involved, which the fork model's parent would read whole
before the app runs); ``/env?NAME`` answers that environment
variable; ``/own-header`` sets its own ``x-frame-options``; anything else
answers ``hello``. ``create_app`` is a factory of ``app``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

_TEXT = [(b"content-type", b"text/plain")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/hold":
        await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
        await send({"type": "http.response.body", "body": b"in\n", "more_body": True})
        flag = scope["query_string"].decode()
        for _ in range(3000):  # 30 s at most
            if os.path.exists(flag):
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"done\n"})
        return
    headers = list(_TEXT)
    if path == "/env":
        body = os.environ.get(scope["query_string"].decode(), "<unset>").encode()
    elif path == "/own-header":
        headers.append((b"x-frame-options", b"SAMEORIGIN"))
        body = b"own"
    else:
        body = b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: How many times create_app ran in this process.
made = 0


def create_app() -> Any:
    global made
    made += 1
    return app


def failing_factory() -> Any:
    raise RuntimeError("no database")


not_callable = 42
