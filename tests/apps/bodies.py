"""Apps for request-body and WebSocket-children tests (served by 'bodies:app').

- ``/echo``: reads the whole body; answers JSON with its size, sha256, the
  number of ``http.request`` events, the largest piece and the child's pid.
- ``/read``: reads until ``more_body`` is false or ``http.disconnect``;
  prints ``BODY-DISCONNECT <path>`` (stdout, flushed) when the latter comes,
  then answers 200 if it can.
- ``/ws``: a WebSocket accepted and held until the client leaves.
- anything else: 200 ``ok <pid>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any


async def _text(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    path = scope["path"]
    if path == "/echo":
        digest, size, events, largest = hashlib.sha256(), 0, 0, 0
        while True:
            message = await receive()
            assert message["type"] == "http.request", message
            body = message.get("body", b"")
            digest.update(body)
            size += len(body)
            events += 1
            largest = max(largest, len(body))
            if not message.get("more_body"):
                break
        report = {"size": size, "sha256": digest.hexdigest(), "events": events,
                  "largest": largest, "pid": os.getpid()}
        await _text(send, 200, json.dumps(report).encode())
        return
    if path == "/read":
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                print(f"BODY-DISCONNECT {path}", flush=True, file=sys.stdout)
                return
            if not message.get("more_body"):
                break
        await _text(send, 200, b"read")
        return
    await _text(send, 200, b"ok %d" % os.getpid())
