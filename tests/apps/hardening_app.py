"""The app of tests/test_hardening_cycle.py: what app code does to a request's cycle.

HTTP:
- ``/hold``: writes ``$HARDENING_DIR/held``, answers 200 ``released`` once
  ``$HARDENING_DIR/release`` exists (a request in flight while others fail);
- ``/exit``, ``/interrupt``: ``sys.exit(3)`` / ``KeyboardInterrupt`` before any
  response; ``/exit-mid``: after the response head and a first chunk;
- ``/stream``: streams 1 KiB chunks until the client goes, then returns
  (prints ``stream stopped``), as Django's streaming response does;
- ``/early``: a head and one chunk, then returns on a live connection;
- ``/fast``, ``/slow``: ``fast`` at once, ``slow`` after 1 s;
- ``/listen``: a long poll: waits for ``http.disconnect``, prints ``heard disconnect``;
- any other path: raises ``LookupError`` (the log line carries the path).

WebSocket: ``/ws-exit`` and ``/ws-interrupt`` accept, then raise ``SystemExit`` /
``KeyboardInterrupt``; any other path accepts, then raises ``LookupError``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

Scope = dict[str, Any]


def _start(status: int = 200) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"text/plain")]}


async def _answer(send: Any, body: bytes) -> None:
    await send(_start())
    await send({"type": "http.response.body", "body": body})


async def _hold(send: Any) -> None:
    directory = os.environ["HARDENING_DIR"]
    with open(os.path.join(directory, "held"), "w"):
        pass
    release = os.path.join(directory, "release")
    for _ in range(2000):  # 20 s at most
        if os.path.exists(release):
            await _answer(send, b"released")
            return
        await asyncio.sleep(0.01)
    await _answer(send, b"never released")


async def _stream(receive: Any, send: Any) -> None:
    await send(_start())
    await receive()  # the (empty) request body
    gone = asyncio.ensure_future(receive())  # http.disconnect, once the client leaves
    try:
        for _ in range(6000):  # 60 s at most
            if gone.done():
                break
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            await asyncio.sleep(0.01)
    except OSError:  # send() after the client left: ClientDisconnected
        pass
    gone.cancel()
    print("stream stopped", flush=True)


async def http(scope: Scope, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/hold":
        await _hold(send)
    elif path == "/exit":
        sys.exit(3)
    elif path == "/interrupt":
        raise KeyboardInterrupt
    elif path == "/exit-mid":
        await send(_start())
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        sys.exit(3)
    elif path == "/stream":
        await _stream(receive, send)
    elif path == "/early":
        await send(_start())
        await send({"type": "http.response.body", "body": b"early", "more_body": True})
    elif path == "/listen":
        await receive()  # the (empty) request body
        message = await asyncio.wait_for(receive(), 20)
        print(f"heard {message['type'].partition('.')[2]}", flush=True)
    elif path == "/fast":
        await _answer(send, b"fast")
    elif path == "/slow":
        await asyncio.sleep(1)
        await _answer(send, b"slow")
    else:
        raise LookupError("no such page")


async def websocket(scope: Scope, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if scope["path"] == "/ws-exit":
        sys.exit(3)
    if scope["path"] == "/ws-interrupt":
        raise KeyboardInterrupt
    raise LookupError("no such socket")


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
