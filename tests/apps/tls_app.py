"""An app for the TLS tests: reports what the scope says of the connection.

``/scope`` answers JSON with the scheme, the TLS extension and the pid;
``/upload`` the size and SHA-256 of the body; ``/stream`` sends ?n chunks of
64 KiB; ``/ws`` (WebSocket) sends the TLS extension, then echoes.
``/created`` answers 201 as ``HTTPStatus.CREATED`` with headers as a
generator (``?tuple``: a tuple of tuples). ``/set`` and ``/get`` show whether
module state leaks between requests; the other paths of ``forky`` (crashes,
sleeps) are served too.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from http import HTTPStatus
from typing import Any

import forky

STATE: dict[str, str] = {}


async def _json(send: Any, data: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        if scope["path"] == "/ws-segv":  # the child dies before accepting
            os.kill(os.getpid(), signal.SIGSEGV)
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(
            {"scheme": scope["scheme"], "tls": scope.get("extensions", {}).get("tls"),
             "pid": os.getpid()})})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"),
                        "bytes": message.get("bytes")})
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/scope":
        await _json(send, {"scheme": scope["scheme"],
                           "tls": scope.get("extensions", {}).get("tls"), "pid": os.getpid()})
    elif path == "/upload":
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            digest.update(message.get("body", b""))
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _json(send, {"size": size, "sha256": digest.hexdigest()})
    elif path == "/stream":
        count = int(scope["query_string"] or b"16")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            await send({"type": "http.response.body", "body": bytes([65 + i % 26]) * 65536,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/disconnect":  # waits for the client to leave, then records it
        while (await receive())["type"] != "http.disconnect":
            pass
        with open(scope["query_string"].decode(), "w") as fh:
            fh.write("disconnected")
    elif path == "/background":  # answers, then writes a file after the response
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"answered"})
        with open(scope["query_string"].decode(), "w") as fh:
            fh.write("done after the response")
    elif path == "/unread":  # answers without reading the request body, and returns
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"not read"})
    elif path == "/misuse":  # a body before its start: send() raises, the app lets it go
        await send({"type": "http.response.body", "body": b"too early"})
    elif path == "/created":  # what Starlette passes through: an enum, headers not a list
        rows = ((b"x-made", b"here"), (b"content-type", b"text/plain"))
        headers = rows if scope["query_string"] == b"tuple" else (row for row in rows)
        await send({"type": "http.response.start", "status": HTTPStatus.CREATED,
                    "headers": headers})
        await send({"type": "http.response.body", "body": b"made"})
    elif path == "/raise":
        raise ValueError("raised in the app")
    else:
        await forky.app(scope, receive, send)
