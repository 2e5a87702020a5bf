"""Apps for tests/test_extensions.py: qactuar's ASGI extensions in every model.

``app`` (plain ASGI):

  HTTP ``/reason?status=N&reason=R``  answers N with reason phrase R (the
                    ``qactuar.http.response.reason`` extension), body "ok";
                    ``&bytes=1`` passes R as bytes
  HTTP ``/scope``   any request (an incomplete websocket handshake too): 200, JSON
                    of the scope's type, method, extension names and process model
  websocket ``/ping``   accept with ``qactuar.ping_events``; a text "ping:X" makes
                    the app send ``websocket.ping`` X; each ``websocket.ping`` /
                    ``websocket.pong`` event is reported as text "got ping:X" /
                    "got pong:X"
  websocket ``/pushonly``  accept with ``qactuar.ping_events``, never receive
                    again, send "tick" every 50 ms until the client is gone
  websocket ``/close4001``  accept, close with 4001 at once, wait for the disconnect
  websocket ``/nodeflate``  as ``/plain``, but accept with ``qactuar.compression`` False
  websocket ``/plain``  accept without asking for ping events (a plain ASGI app):
                    echoes text as "echo:X"; any other event type is reported as
                    "unexpected:TYPE"

``tornado_app`` (the bridge): ``/status?code=N&reason=R`` raises
HTTPError(N, reason=R); ``/old?reason=R`` answers 400 with R stored unchecked (as
``set_status`` did before Tornado 6.5.3); ``/ws`` a WebSocketHandler whose on_ping/on_pong write
"on_ping:X"/"on_pong:X" and whose message "ping:X" calls ``self.ping(X)``;
``/poll`` a coroutine GET waiting on a module-level Condition (the long-poll
pattern). ``tornado_plain`` has only a plain, synchronous handler.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from tornado import locks, web, websocket

from qactuar.tornado_bridge import wrap

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["path"] == "/ping":
        await _ping(receive, send)
    elif scope["path"] == "/pushonly":
        await _push_only(receive, send)
    elif scope["path"] == "/close4001":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    else:
        await _plain(receive, send, scope["path"] == "/nodeflate")


async def _http(scope: Scope, receive: Any, send: Any) -> None:
    query = parse_qs(scope["query_string"].decode("latin-1"), encoding="latin-1")
    if scope["path"] == "/reason":
        reason: str | bytes = query.get("reason", [""])[0]
        if "bytes" in query:
            reason = reason.encode("latin-1")
        await send({"type": "http.response.start", "status": int(query["status"][0]),
                    "headers": [(b"content-type", b"text/plain")], "reason": reason})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    extensions = scope.get("extensions") or {}
    body = json.dumps({
        "type": scope["type"],
        "method": scope["method"],
        "extensions": sorted(extensions),
        "model": extensions.get("qactuar.process_model", {}).get("model"),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _ping(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept", "qactuar.ping_events": True})
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            return
        if kind == "websocket.receive" and message.get("text", "").startswith("ping:"):
            payload = message["text"][5:].encode()
            await send({"type": "websocket.ping", "bytes": payload})
        elif kind in ("websocket.ping", "websocket.pong"):
            text = f"got {kind[10:]}:{message['bytes'].decode('latin-1')}"
            await send({"type": "websocket.send", "text": text})


async def _push_only(receive: Any, send: Any) -> None:
    """Asks for ping events but never reads again: sends "tick" until the client is gone."""
    await receive()
    await send({"type": "websocket.accept", "qactuar.ping_events": True})
    for _ in range(10_000):
        await asyncio.sleep(0.05)
        try:
            await send({"type": "websocket.send", "text": "tick"})
        except OSError:  # the client has gone (ASGI: send raises once disconnected)
            return


async def _plain(receive: Any, send: Any, no_deflate: bool) -> None:
    await receive()
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if no_deflate:
        accept["qactuar.compression"] = False
    await send(accept)
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            return
        if kind == "websocket.receive" and message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        else:
            await send({"type": "websocket.send", "text": "unexpected:" + kind})


class Status(web.RequestHandler):
    def get(self) -> None:
        reason = self.get_argument("reason", None)
        raise web.HTTPError(int(self.get_argument("code")), reason=reason)


class OldStatus(web.RequestHandler):
    """Tornado < 6.5.3's set_status(400, reason) stored the reason unchecked."""

    def get(self) -> None:
        self.set_status(400)
        self._reason = self.get_argument("reason")
        self.finish("old")


class Pings(websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith("ping:"):
            self.ping(message[5:].encode())

    def on_ping(self, data: bytes) -> None:
        self.write_message("on_ping:" + data.decode("latin-1"))

    def on_pong(self, data: bytes) -> None:
        self.write_message("on_pong:" + data.decode("latin-1"))


class MessageBuffer:
    def __init__(self) -> None:
        self.cond = locks.Condition()


global_message_buffer = MessageBuffer()


class Poll(web.RequestHandler):
    async def post(self) -> None:
        await global_message_buffer.cond.wait()


class Plain(web.RequestHandler):
    def get(self) -> None:
        self.write("plain")


tornado_app = wrap([(r"/status", Status), (r"/old", OldStatus), (r"/ws", Pings), (r"/poll", Poll)])
tornado_plain = wrap([(r"/", Plain)])
