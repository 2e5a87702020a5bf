"""An app that never reads what its client sends, for the relay's memory tests.

``/ws`` (WebSocket) accepts, sends ``"accepted"`` and then sleeps without
ever calling ``receive()`` again (``/ws-ticks``: sends ``"tick"`` every 50 ms
until a send raises), while its client may flood it; HTTP
answers ``200 "not read"`` without reading the request body, then sleeps
``?seconds`` (default 0) so that the request stays in flight.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "accepted"})
        if scope["path"] == "/ws-ticks":  # sends until its send() raises (the client left)
            for _ in range(36000):
                await asyncio.sleep(0.05)
                await send({"type": "websocket.send", "text": "tick"})
        await asyncio.sleep(3600)  # never receive(): the client's messages pile up somewhere
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"not read", "more_body": True})
    await asyncio.sleep(float(scope["query_string"] or b"0"))
    await send({"type": "http.response.body", "body": b""})
