"""The ASGI application object that `wrap()` returns."""

from __future__ import annotations

from tornado import httputil

from ._exchange import serve_http
from ._loops import warn_about_stranded_ioloops
from ._options import _ServerOptions
from ._processes import process_model, warn_if_state_is_split
from ._types import Receive, Scope, Send
from ._websocket_serve import serve_websocket


class TornadoBridgeWarning(UserWarning):
    """A Tornado setting or object that the bridge turned off or cannot honour."""


class TornadoASGIApp:
    """An ASGI 3 app serving a Tornado Application (or Router), made by `wrap()`.

    ``tornado_app`` is the wrapped object, for tests and introspection.
    """

    def __init__(
        self, tornado_app: httputil.HTTPServerConnectionDelegate, options: _ServerOptions
    ) -> None:
        self.tornado_app = tornado_app
        self._options = options
        self._checked_loops = False
        self._checked_model = False

    def __repr__(self) -> str:
        return f"<TornadoASGIApp {self.tornado_app!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if not self._checked_model:
            self._check_model(scope)
        if not self._checked_loops and kind != "lifespan":
            self._checked_loops = True
            warn_about_stranded_ioloops(TornadoBridgeWarning)
        if kind == "http":
            await serve_http(self.tornado_app, self._options, scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await serve_websocket(self.tornado_app, self._options, scope, receive, send)
        else:
            raise ValueError(f"TornadoASGIApp cannot serve ASGI scope type {kind!r}")


    def _check_model(self, scope: Scope) -> None:
        """Once per process: warn if the server's process model splits the app's state.

        Decided on the lifespan scope (so a fork model's children, forked
        after it, inherit the decision) or the first request's in a process
        that serves many (``async``, ``prefork``); a fork child with no
        lifespan run before it says nothing, else every request would warn.
        """
        model = process_model(scope)
        if model is None:
            # not qactuar (or an older one): the server says nothing of it
            self._checked_model = scope["type"] != "lifespan"
            return
        if model == "fork" and scope["type"] != "lifespan":
            self._checked_model = True  # a fork child: its parent decided, or nobody does
            return
        self._checked_model = True
        warn_if_state_is_split(self.tornado_app, model)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Tornado applications have no startup or shutdown hooks: just agree."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
