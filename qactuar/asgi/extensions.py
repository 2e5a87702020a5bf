"""The ASGI extensions qactuar offers, by the names its scopes list them under.

The ASGI spec puts server-specific extensions in ``scope["extensions"]``; an
application (the Tornado bridge among them) uses one only when the scope
lists it, so it runs unchanged under any other server. The README's
"qactuar's ASGI extensions" section is the user's description.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "COMPRESSION_KEY",
    "PING_EVENTS_KEY",
    "PROCESS_MODEL",
    "REASON",
    "WEBSOCKET_COMPRESSION",
    "WEBSOCKET_PING",
]

#: ``http.response.start`` (and ``websocket.http.response.start``) may carry
#: ``"reason"``: the status line's reason phrase, checked by ``http.check_reason``;
#: with it a status may be 200-999.
REASON: Final = "qactuar.http.response.reason"
#: WebSocket ping and pong frames as ASGI events: the app may send
#: ``websocket.ping``; once it asked for them in ``websocket.accept``
#: (``PING_EVENTS_KEY``: True) it receives ``websocket.ping`` and
#: ``websocket.pong`` for the frames the client sends.
WEBSOCKET_PING: Final = "qactuar.websocket.ping"
PING_EVENTS_KEY: Final = "qactuar.ping_events"
#: ``websocket.accept`` may carry ``COMPRESSION_KEY``: False, and then this
#: connection negotiates no permessage-deflate (WS_COMPRESSION decides else).
WEBSOCKET_COMPRESSION: Final = "qactuar.websocket.compression"
COMPRESSION_KEY: Final = "qactuar.compression"
#: ``{"model": "fork" | "async" | "prefork"}``: how this server arranges its
#: processes, so that an app can tell whether state in memory is shared by
#: the requests that follow (``async`` only).
PROCESS_MODEL: Final = "qactuar.process_model"
