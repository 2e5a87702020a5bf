"""The app of tests/test_send_timeout_pipelining.py: a client that stops reading, pipelining.

HTTP:
- ``/stream``: streams 64 KiB chunks (64 MiB at most) until ``send()``
  fails; prints ``stream started`` at the first chunk, then ``stream
  stopped: <exception class> after <n> chunks; receive: <message type>``
  (the first after the request's body);
- ``/big``: 8 MiB in one ``send()`` (the response is complete at once, the
  bytes wait in the server's write buffer); prints ``big sent``;
- ``/p/<n>``: answers ``<n>`` (pipelining: the answers must come in order);
- any other path: ``ok``.

WebSocket (any path): accepts, then sends 64 KiB binary messages (64 MiB at
most) until ``send()`` fails; prints ``ws stopped: <exception class>;
receive: <message type> <code>``.
"""

from __future__ import annotations

from typing import Any

CHUNK = b"x" * 65536
MOST = 1024  # 64 MiB: a client that reads nothing holds a small part of it


def _say(text: str) -> None:
    print(text, flush=True)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await _ws(receive, send)
        return
    path = scope["path"]
    if path == "/stream":
        await _stream(receive, send)
        return
    if path == "/big":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (128 * len(CHUNK)))]})
        await send({"type": "http.response.body", "body": CHUNK * 128})
        _say("big sent")
        return
    body = path[3:].encode() if path.startswith("/p/") else b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def _stream(receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    sent = 0
    try:
        while sent < MOST:
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            sent += 1
            if sent == 1:
                _say("stream started")
        failure = "none"
    except OSError as exc:
        failure = type(exc).__name__
    message = await receive()
    if message["type"] == "http.request":
        # the fork model's TLS relay passed the (empty) body on ahead
        message = await receive()
    _say(f"stream stopped: {failure} after {sent} chunks; receive: {message['type']}")


async def _ws(receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    sent = 0
    try:
        while sent < MOST:
            await send({"type": "websocket.send", "bytes": CHUNK})
            sent += 1
            if sent == 1:
                _say("ws started")
        failure = "none"
    except OSError as exc:
        failure = type(exc).__name__
    message = await receive()
    _say(f"ws stopped: {failure}; receive: {message['type']} {message.get('code')}")
