"""The APPS mount table as one ASGI app.

Routes match whole path segments, longest prefix first: ``/api`` serves
``/api`` and ``/api/x`` but not ``/apix``. The mounted app sees ``root_path``
extended by its prefix and the full ``path`` (as Starlette and Hypercorn read
them). No match is a 404 from the server.

The router speaks lifespan for the apps it mounts: each gets its own
``LifespanRunner`` and so its own ``state``, and each request's scope gets a
copy of its own app's state.
"""

from __future__ import annotations

from typing import Any

from .asgi.types import ASGIApp, Receive, Scope, Send
from .lifespan import LifespanFailure, LifespanRunner

__all__ = ["Router"]

_NOT_FOUND = b"Not Found\n"


class Router:
    def __init__(self, mounts: dict[str, ASGIApp], lifespan: str = "auto") -> None:
        routes = []
        for prefix, app in mounts.items():
            routes.append((prefix.rstrip("/"), app))
        # longest prefix first; "" (the root mount) last
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.lifespan_mode = lifespan
        self._runners: dict[int, LifespanRunner] = {}

    def match(self, path: str) -> tuple[str, ASGIApp] | None:
        for prefix, app in self.routes:
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return prefix, app
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send, scope.get("extensions"))
            return
        root_path = scope.get("root_path", "")
        path = scope["path"]
        relative = path[len(root_path) :] if root_path and path.startswith(root_path) else path
        found = self.match(relative)
        if found is None:
            await self._not_found(scope, receive, send)
            return
        prefix, app = found
        child = dict(scope)
        child["root_path"] = root_path + prefix
        runner = self._runners.get(id(app))
        if runner is not None and "state" in scope:
            child["state"] = runner.state.copy()
        await app(child, receive, send)

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix = "http."
        if scope["type"] == "websocket":
            if "websocket.http.response" not in scope.get("extensions", {}):
                await send({"type": "websocket.close", "code": 1000})  # 403, all we can
                return
            prefix = "websocket.http."  # the denial-response extension: a real 404
        await send(
            {
                "type": prefix + "response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(_NOT_FOUND)),
                ],
            }
        )
        await send({"type": prefix + "response.body", "body": _NOT_FOUND})

    async def _lifespan(
        self, receive: Receive, send: Send, extensions: dict[str, Any] | None
    ) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        started: list[LifespanRunner] = []
        try:
            for prefix, app in reversed(self.routes):
                runner = LifespanRunner(
                    app, self.lifespan_mode, f"app at {prefix or '/'}", extensions
                )
                await runner.startup()
                self._runners[id(app)] = runner
                started.append(runner)
        except LifespanFailure as exc:
            # the apps that did start are shut down again, newest first
            for runner in reversed(started):
                try:
                    await runner.shutdown()
                except LifespanFailure:
                    pass
            await send({"type": "lifespan.startup.failed", "message": f"{exc.name}: {exc.reason}"})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        errors: list[Any] = []
        for runner in reversed(started):
            try:
                await runner.shutdown()
            except LifespanFailure as exc:
                errors.append(f"{exc.name}: {exc.reason}")
        if errors:
            await send({"type": "lifespan.shutdown.failed", "message": "; ".join(errors)})
        else:
            await send({"type": "lifespan.shutdown.complete"})
