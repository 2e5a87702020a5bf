"""The APPS mount table as one ASGI app.

Routes match whole path segments, longest prefix first: ``/api`` serves
``/api`` and ``/api/x`` but not ``/apix``. The mounted app sees ``root_path``
extended by its prefix and the full ``path`` (as Starlette and Hypercorn read
them). No match is a 404 from the server.

The router speaks lifespan for the apps it mounts: each gets its own
``LifespanRunner`` and so its own ``state``, and each request's scope gets a
copy of its own app's state.

``remount`` adds and removes routes while serving (the admin socket's
``POST /apps``, ``DELETE /apps/...``, ``POST /reload``): the table is swapped
whole, and each mount counts the requests in flight in it (``Mount.active``)
so that an unmounted app is shut down only once they end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .asgi.types import ASGIApp, Receive, Scope, Send
from .lifespan import LifespanFailure, LifespanRunner

__all__ = ["Mount", "Router"]

_NOT_FOUND = b"Not Found\n"


@dataclass(slots=True, eq=False)
class Mount:
    """One route of the table: its app, its lifespan once started, its requests in flight."""

    prefix: str
    app: ASGIApp
    runner: LifespanRunner | None = None
    #: Requests (and WebSocket sessions) this process is running in ``app`` now.
    active: int = 0


class Router:
    def __init__(self, mounts: dict[str, ASGIApp], lifespan: str = "auto") -> None:
        self.lifespan_mode = lifespan
        #: Longest prefix first; "" (the root mount) last. Replaced whole, never
        #: changed in place: a request matches against one table or the next.
        self.mounts: list[Mount] = _ordered(Mount(p.rstrip("/"), app) for p, app in mounts.items())
        #: Runners started, in order (the live ones too), shut down in reverse.
        self._started: list[LifespanRunner] = []

    @property
    def routes(self) -> list[tuple[str, ASGIApp]]:
        return [(m.prefix, m.app) for m in self.mounts]

    def find(self, path: str) -> Mount | None:
        for mount in self.mounts:
            prefix = mount.prefix
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return mount
        return None

    def match(self, path: str) -> tuple[str, ASGIApp] | None:
        found = self.find(path)
        return None if found is None else (found.prefix, found.app)

    def remount(self, add: Iterable[Mount] = (), remove: Iterable[str] = ()) -> list[Mount]:
        """Add and remove routes in one step (a request sees the table before or
        after, never between); returns the mounts removed. KeyError for a route
        to remove that is not mounted, ValueError for one to add that is (unless
        removed in the same step): the table is then unchanged.

        An added mount's ``runner`` (lifespan started by the caller) is shut
        down with the router's own lifespan unless it is removed first; a
        removed mount's runner is the caller's to shut down.
        """
        gone = {prefix.rstrip("/") for prefix in remove}
        current = {m.prefix: m for m in self.mounts}
        missing = gone - current.keys()
        if missing:
            raise KeyError(sorted(missing)[0] or "/")
        added = list(add)
        for mount in added:
            mount.prefix = mount.prefix.rstrip("/")
            if mount.prefix in current and mount.prefix not in gone:
                raise ValueError(f"{mount.prefix or '/'} is mounted already")
        removed = [current[prefix] for prefix in gone]
        kept = [m for m in self.mounts if m.prefix not in gone]
        self.mounts = _ordered([*kept, *added])
        for mount in removed:
            if mount.runner in self._started:
                self._started.remove(mount.runner)
        self._started += [m.runner for m in added if m.runner is not None]
        return removed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send, scope.get("extensions"))
            return
        root_path = scope.get("root_path", "")
        path = scope["path"]
        relative = path[len(root_path) :] if root_path and path.startswith(root_path) else path
        mount = self.find(relative)
        if mount is None:
            await self._not_found(scope, receive, send)
            return
        child = dict(scope)
        child["root_path"] = root_path + mount.prefix
        runner = mount.runner
        if runner is not None and "state" in scope:
            child["state"] = runner.state.copy()
        mount.active += 1
        try:
            await mount.app(child, receive, send)
        finally:
            mount.active -= 1

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
            for mount in reversed(self.mounts):
                if mount.runner is not None:
                    continue  # started already (mounted live)
                runner = LifespanRunner(
                    mount.app, self.lifespan_mode, f"app at {mount.prefix or '/'}", extensions
                )
                await runner.startup()
                mount.runner = runner
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
        self._started[:0] = started
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        errors: list[Any] = []
        for runner in reversed(self._started):
            try:
                await runner.shutdown()
            except LifespanFailure as exc:
                errors.append(f"{exc.name}: {exc.reason}")
        if errors:
            await send({"type": "lifespan.shutdown.failed", "message": "; ".join(errors)})
        else:
            await send({"type": "lifespan.shutdown.complete"})


def _ordered(mounts: Iterable[Mount]) -> list[Mount]:
    return sorted(mounts, key=lambda m: len(m.prefix), reverse=True)
