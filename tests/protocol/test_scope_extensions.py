"""``scope["extensions"]`` across the requests of one server (the async model's case).

The extension values are built once per server and shared: read-only dicts,
so an app cannot change what the next request sees; the outer dict is each
request's own, so an app may add its keys there.
"""

from __future__ import annotations

import json
from typing import Any

from protocol_harness import Clock, Harness, run, settle

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_an_app_changes_no_other_requests_extensions() -> None:
    seen: list[dict[str, Any]] = []
    refused: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        extensions = scope["extensions"]
        seen.append(json.loads(json.dumps(extensions)))
        extensions["app.own"] = {"n": len(seen)}  # the app's key: this request's only
        for name, value in list(extensions.items()):
            if name.startswith("qactuar."):
                try:
                    value["model"] = "tampered"
                except TypeError as exc:
                    refused.append(str(exc))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close"})  # refused: 403
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario(clock: Clock) -> None:
        h = Harness(app, clock, MODEL="async")
        for _ in range(3):
            conn, transport = h.connect()
            conn.data_received(REQUEST)
            await settle()
            assert transport.take().startswith(b"HTTP/1.1 200 OK\r\n")
        for _ in range(2):
            conn, transport = h.connect()
            conn.data_received(HANDSHAKE)
            await settle()
            assert transport.take().startswith(b"HTTP/1.1 403 Forbidden\r\n")
        expected = {"qactuar.http.response.reason": {},
                    "qactuar.process_model": {"model": "async"}}
        ws_expected = {"websocket.http.response": {}, "qactuar.http.response.reason": {},
                       "qactuar.websocket.ping": {}, "qactuar.websocket.compression": {},
                       "qactuar.process_model": {"model": "async"}}
        assert seen == [expected] * 3 + [ws_expected] * 2
        assert len(refused) == 6 + 2 * 4 and all("read-only" in text for text in refused)

    run(scenario)
