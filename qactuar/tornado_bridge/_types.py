"""ASGI type aliases shared by the bridge's modules.

The bridge depends on nothing but Tornado and the standard library, so it
spells out the few ASGI shapes it needs instead of importing them.
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# qactuar's ASGI extensions (README: "qactuar's ASGI extensions"), used when a
# scope lists them, spelt out here too. Under any other server the bridge does
# without: no reason phrase, no status over 599, no ping events.
REASON_EXTENSION = "qactuar.http.response.reason"
PING_EXTENSION = "qactuar.websocket.ping"
PING_EVENTS_KEY = "qactuar.ping_events"
PROCESS_MODEL_EXTENSION = "qactuar.process_model"
COMPRESSION_EXTENSION = "qactuar.websocket.compression"
COMPRESSION_KEY = "qactuar.compression"


def offers(scope: Scope, extension: str) -> bool:
    """Whether the server lists ``extension`` in ``scope["extensions"]``."""
    return extension in (scope.get("extensions") or ())
