"""The ``AdminBackend`` of each process model: what the admin app reads of it.

One per model, living in the process that serves the admin socket:
``AsyncBackend`` (the process), ``ForkBackend`` (the parent: itself and
its live children), ``PreforkBackend`` (the master: itself and its workers,
from the arbiter's records and their shared slots). Only the read side is
here; the figures and the live side come from the model:

- the figures: the model's own ``totals()`` (admin/figures.py: every
  process's, retired ones folded in);
- the live side (config changes, apps, reload) is the model's live object
  (``live_async.py``, ``live_prefork.py``), which the backend hands them to.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..config import Config
from .backend import AppInfo, ProcessInfo
from .figures import Totals
from .live_async import AsyncLive, ForkLive
from .live_prefork import PreforkLive

if TYPE_CHECKING:
    from ..models.arbiter import Arbiter
    from ..models.fork import ForkServer
    from ..server import Server

__all__ = ["AsyncBackend", "ForkBackend", "PreforkBackend"]


def _wall(monotonic_then: float) -> float:
    """time.time() of a time.monotonic() reading."""
    return time.time() - (time.monotonic() - monotonic_then)


class _LiveSide:
    """What changes a running server (PATCH /config, apps, reload): handed to
    the model's live object (``live_async.py``, ``live_prefork.py``)."""

    live: AsyncLive | PreforkLive

    def live_keys(self) -> frozenset[str]:
        return self.live.live_keys()

    async def apply_config(self, changes: dict[str, Any]) -> None:
        await self.live.apply_config(changes)

    def apps(self) -> list[AppInfo]:
        return self.live.apps()

    async def mount(self, route: str, target: str, source: str = "admin",
                    app_dir: str | None = None) -> AppInfo:
        return await self.live.mount(route, target, source, app_dir)

    async def unmount(self, route: str) -> None:
        await self.live.unmount(route)

    async def reload(self) -> None:
        await self.live.reload()


class AsyncBackend(_LiveSide):
    """The ``async`` model: one process."""

    model = "async"
    #: The model's live side (``ForkBackend``: ``ForkLive``).
    LIVE: type[AsyncLive] = AsyncLive

    def __init__(self, server: Server, target: str | None = None) -> None:
        """Before ``server.serve()``: the live side routes even one app (``AsyncLive``)."""
        self.server = server
        self.started = time.time()
        self.live = self.LIVE(server, target)  # (ForkBackend: a ForkServer, ForkLive)

    @property
    def config(self) -> Config:
        return self.server.config

    def processes(self) -> list[ProcessInfo]:
        server = self.server
        state = "stopping" if server.should_exit else "serving"
        return [ProcessInfo(os.getpid(), "process", state, self.started,
                            requests=server.state.requests_served)]

    def totals(self) -> Totals:
        return self.server.totals()

    def counters(self) -> dict[str, int]:
        return {"restarts": 0, "recycles": 0}  # one process, never replaced


class ForkBackend(AsyncBackend):
    """The ``fork`` model: the parent and each child alive now."""

    model = "fork"
    server: ForkServer
    live: ForkLive
    LIVE = ForkLive

    def processes(self) -> list[ProcessInfo]:
        server = self.server
        state = "stopping" if server.should_exit else "serving"
        found = [ProcessInfo(os.getpid(), "parent", state, self.started)]
        zygote = server.zygote
        if zygote is not None:
            found.append(ProcessInfo(zygote.pid, "zygote", "forking", _wall(zygote.started)))
        for child in list(server.children.values()):
            state = "timed out" if child.timed_out else "serving"
            found.append(ProcessInfo(child.pid, "child", state, _wall(child.started),
                                     requests=1, detail=_serving(child.conn)))
        return found

    def counters(self) -> dict[str, int]:
        return {**self.server.admin_counters(), "restarts": 0, "recycles": 0}


def _serving(conn: Any) -> str:
    """What a fork child serves, as the parent knows it: ``METHOD /path`` or the client."""
    cycle = getattr(conn, "cycle", None)
    scope = getattr(cycle, "scope", None)
    if isinstance(scope, dict) and "path" in scope:
        method = scope.get("method", "GET" if scope.get("type") == "websocket" else "")
        return f"{method} {scope['path']}".strip()
    client = getattr(conn, "client", None)
    return f"{client[0]}:{client[1]}" if isinstance(client, tuple) else ""


class PreforkBackend(_LiveSide):
    """The ``prefork`` model: the master and each worker it keeps."""

    model = "prefork"

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self.model = arbiter.config.MODEL  # "fork" with WORKERS: its workers are fork parents
        self.started = _wall(arbiter.started)
        self.live = PreforkLive(arbiter)

    @property
    def config(self) -> Config:
        return self.arbiter.config

    def processes(self) -> list[ProcessInfo]:
        arbiter = self.arbiter
        state = "stopping" if arbiter.stopping else "supervising"
        found = [ProcessInfo(arbiter.pid, "master", state, self.started)]
        for worker in list(arbiter.workers.values()):
            found.append(ProcessInfo(worker.pid, "worker", worker.state, _wall(worker.started),
                                     requests=worker.slot.requests))
        return found

    def totals(self) -> Totals:
        return self.arbiter.totals()

    def counters(self) -> dict[str, int]:
        return self.arbiter.admin_counters()
