"""What the admin app asks of a process model, and the shapes it gets back.

Each model (``async``, ``fork``, ``prefork``) has one ``AdminBackend``,
living in the process that serves the admin socket (the process itself, the
fork parent, the prefork master). The admin app (``app.py``) knows nothing
else of the model: everything it shows or changes goes through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import Config
from .figures import Totals

__all__ = ["AdminBackend", "AdminError", "AppInfo", "ProcessInfo"]


class AdminError(Exception):
    """A request the backend refuses: ``status`` (400, 404, 409...) and a reason for the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class ProcessInfo:
    """One process of the server, as ``GET /status`` lists it."""

    pid: int
    #: "process" (async), "parent" / "zygote" / "child" (fork), "master" / "worker" (prefork)
    role: str
    #: "booting", "ready", "serving", "stopping"...: the model's own words
    state: str
    #: time.time() when it started
    started: float
    #: requests it served (a fork child: the ones of its connection, usually 1)
    requests: int = 0
    #: the route or request it serves now, where the model knows it (fork children)
    detail: str = ""


@dataclass
class AppInfo:
    """One mounted app, as ``GET /apps`` lists it."""

    route: str
    #: "module:attribute" as given in APPS or POST /apps
    target: str
    #: "config", "admin" (mounted by POST /apps) or "git" (installed from a clone)
    source: str = "config"
    extra: dict[str, Any] = field(default_factory=dict)


class AdminBackend(Protocol):
    """A process model, seen from the admin socket. Runs on the serving loop:
    nothing here may block it (long work goes to a thread or subprocess)."""

    #: "async", "fork" or "prefork"
    model: str
    #: time.time() when the server started
    started: float

    @property
    def config(self) -> Config:
        """The config in force (after every PATCH applied so far)."""
        ...

    def processes(self) -> list[ProcessInfo]:
        """Every process of the server, the admin socket's own first."""
        ...

    def totals(self) -> Totals:
        """The figures of every process of the server, folded together, retired ones
        included: counters never go backwards."""
        ...

    def counters(self) -> dict[str, int]:
        """Process-model counters for /metrics and /status: ``workers`` (or ``children``),
        ``restarts`` (processes that died and were replaced), ``recycles``
        (replaced after MAX_REQUESTS or a reload)."""
        ...

    def live_keys(self) -> frozenset[str]:
        """Config keys PATCH /config may change in this model; any other key is a 409."""
        ...

    async def apply_config(self, changes: dict[str, Any]) -> None:
        """Put ``changes`` (already checked as at start-up) in force without
        dropping a request. AdminError if the model cannot."""
        ...

    def apps(self) -> list[AppInfo]:
        ...

    async def mount(self, route: str, target: str, source: str = "admin",
                    app_dir: str | None = None) -> AppInfo:
        """Import ``target`` (from ``app_dir`` first, when given), run its lifespan
        startup, then route ``route`` to it. AdminError (routing untouched) if any step fails."""
        ...

    async def unmount(self, route: str) -> None:
        """Stop routing ``route``; once its in-flight requests end, run its lifespan shutdown."""
        ...

    async def reload(self) -> None:
        """Re-import every app and swap them in gracefully (prefork: replace the workers)."""
        ...
