"""The ASGI extensions qactuar offers, by the names its scopes list them under.

The ASGI spec puts server-specific extensions in ``scope["extensions"]``; an
application (the Tornado bridge among them) uses one only when the scope
lists it, so it runs unchanged under any other server. The README's
"qactuar's ASGI extensions" section is the user's description.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

__all__ = [
    "COMPRESSION_KEY",
    "PING_EVENTS_KEY",
    "PROCESS_MODEL",
    "REASON",
    "WEBSOCKET_COMPRESSION",
    "WEBSOCKET_PING",
    "ReadOnlyDict",
    "scope_extensions",
]

#: ``http.response.start`` (and ``websocket.http.response.start``) may carry
#: ``"reason"``: the status line's reason phrase, checked by ``http.check_reason``;
#: with it a status may be 200-999.
REASON: Final = "qactuar.http.response.reason"
#: WebSocket ping and pong frames as ASGI events: the app may send
#: ``websocket.ping``; once it asked for them in ``websocket.accept``
#: (``PING_EVENTS_KEY``: True) it receives ``websocket.ping`` and
#: ``websocket.pong`` for the frames the client sends (not the pongs to the
#: server's own keep-alive pings: those it consumes).
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


class ReadOnlyDict(dict[str, Any]):
    """A dict (as ASGI says an extension's value is) that refuses to change.

    The values of ``scope["extensions"]`` are built once per server and
    shared by its requests: an app that wrote into one would change what
    the next request sees. The outer ``extensions`` dict is copied per
    request, so apps may add their own keys there.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("a qactuar scope extension is read-only (shared by every request)")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyDict, (dict(self),))


def scope_extensions(model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``extensions`` of every HTTP and websocket scope of a server (TLS aside)."""
    process = ReadOnlyDict(model=model)
    empty = ReadOnlyDict()
    http = {REASON: empty, PROCESS_MODEL: process}
    websocket = {
        "websocket.http.response": empty,
        REASON: empty,
        WEBSOCKET_PING: empty,
        WEBSOCKET_COMPRESSION: empty,
        PROCESS_MODEL: process,
    }
    return http, websocket
