"""Change on the fly in the ``async`` model and in the ``fork`` parent: the server's
config and its mount table, changed in place while it serves (see ``live.py``
for the keys).

A server of one app keeps serving it bare until the first ``POST /apps`` or
``POST /reload``: only then is it mounted at "/" of a ``Router`` (with its
lifespan, started already), so that a server nobody changes pays no routing
per request (a scope copy, a state copy, a coroutine frame: about 3% of the
async model's hello-world throughput). Build the live object before
``Server.serve()``. A mounted app's lifespan runs in this process (the fork
parent too, as at start: children are forked with it started); when the
server stops, every app still mounted is shut down, newest first, then the
first one (``_Mounted``, which takes the place of the server's lifespan).

``fork``: children are forked from the zygote, which the parent replaces
after each change, so a request sees the config and the table as they were
when its child's zygote was forked; an unmounted app is shut
down once every child forked before the unmount has exited.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..checks import websocket_cap
from ..config import Config
from ..lifespan import LifespanFailure, LifespanRunner
from ..routing import Mount, Router
from ..server import Server
from . import live
from .backend import AdminError, AppInfo
from .figures import route_prefixes
from .live import (
    ASYNC_LIVE,
    FORK_LIVE,
    apply_logging,
    check_import,
    import_fresh,
    log_changes,
    route_key,
    shown,
    updated_config,
    wait_for,
)

if TYPE_CHECKING:
    from ..models.fork import ForkServer

__all__ = ["AsyncLive", "ForkLive", "SlotPool"]

logger = logging.getLogger("qt_server")


class AsyncLive:
    """The write side of the async model's ``AdminBackend``: ``AsyncLive(server)``.

    ``target``: the "module:attribute" the server was started with, when it
    serves one app rather than APPS (shown by ``apps()``, re-imported by ``reload()``).
    """

    model = "async"
    LIVE = ASYNC_LIVE

    def __init__(self, server: Server, target: str | None = None) -> None:
        self.server = server
        config = server.config
        #: The server's app once it is a Router (APPS, or the first app mounted).
        self._router = server.app if isinstance(server.app, Router) else None
        if self._router is None and server.started.is_set():
            raise RuntimeError("make the live object before Server.serve()")
        routes = dict(config.APPS) if config.APPS and target is None else {"/": target or ""}
        #: What ``apps()`` lists, by the router's key.
        self.table = {
            route_key(route): AppInfo(route, target) for route, target in routes.items()
        }
        self._lock = asyncio.Lock()  # one change at a time

    @property
    def config(self) -> Config:
        return self.server.config

    @property
    def router(self) -> Router:
        """The server's Router; a lone app is mounted at "/" of a new one first."""
        if self._router is None:
            server = self.server
            first = server.lifespan
            router = Router({"/": server.app}, self.config.LIFESPAN)
            router.mounts[0].runner = first  # started with the server
            router._started.append(first)
            server.lifespan = _Mounted(router, first)
            server.app = server.state.app = self._router = router
        return self._router

    def live_keys(self) -> frozenset[str]:
        return self.LIVE

    # config -----------------------------------------------------------------------

    async def apply_config(self, changes: dict[str, Any]) -> None:
        async with self._lock:
            old = self.config
            new = updated_config(old, changes, self.live_keys())
            apply_logging(old, new)
            self.put_in_force(new)
            log_changes(old, new, self.live_keys())

    def put_in_force(self, config: Config) -> None:
        self.server.config = config
        self.server.state.apply(config)

    # apps -------------------------------------------------------------------------

    def apps(self) -> list[AppInfo]:
        return [self.table[key] for key in sorted(self.table, key=lambda k: (-len(k), k))]

    async def mount(self, route: str, target: str, source: str = "admin",
                    app_dir: str | None = None) -> AppInfo:
        key = route_key(route)
        async with self._lock:
            if key in self.table:
                raise AdminError(409, f"{shown(key)} is mounted already")
            await check_import(target, app_dir or "")
            apps = await self._import({key: target}, app_dir or "", fresh=False)
            mounts = await self._start(apps)
            self.router.remount(add=mounts)
            self._routes_changed()
            extra = {"app_dir": app_dir} if app_dir else {}
            info = self.table[key] = AppInfo(shown(key), target, source, extra)
            logger.debug("Admin: mounted %s at %s", target, shown(key))
            return info

    async def unmount(self, route: str) -> None:
        key = route_key(route)
        async with self._lock:
            if key not in self.table:
                raise AdminError(404, f"nothing is mounted at {shown(key)}")
            removed = self.router.remount(remove=[key])
            self._routes_changed()
            del self.table[key]
            logger.info("Admin: unmounted %s; draining it", shown(key))
            await self._retire(removed)

    async def reload(self) -> None:
        async with self._lock:
            targets = {key: info.target for key, info in self.table.items() if info.target}
            for key in targets:
                info = self.table[key]
                await check_import(info.target, str(info.extra.get("app_dir", "")))
            dirs = [str(info.extra.get("app_dir", "")) for info in self.table.values()]
            apps = await self._import(targets, "", fresh=True, app_dirs=dirs)
            mounts = await self._start(apps)
            removed = self.router.remount(add=mounts, remove=list(targets))
            self._routes_changed()
            logger.info("Admin: reloaded %d app(s); draining the old ones", len(mounts))
            await self._retire(removed)

    # the steps ----------------------------------------------------------------------

    def _routes_changed(self) -> None:
        """The figures count by the routes now served (those gone keep their counts)."""
        figures = self.server.state.figures
        if figures is not None:
            figures.set_routes(route_prefixes(self.router))

    async def _import(self, targets: dict[str, str], app_dir: str, fresh: bool,
                      app_dirs: list[str] | None = None) -> dict[str, Any]:
        work = asyncio.to_thread(
            import_fresh, targets, app_dir, [self.config.APP_DIR, *(app_dirs or [])], fresh
        )
        try:
            return await asyncio.wait_for(work, live.IMPORT_TIMEOUT)
        except TimeoutError:
            names = ", ".join(repr(target) for target in targets.values())
            raise AdminError(422, f"importing {names} took more than {live.IMPORT_TIMEOUT:g}s") \
                from None

    async def _start(self, apps: dict[str, Any]) -> list[Mount]:
        """Each app's lifespan startup; on a failure the ones started are shut down
        again and AdminError 422 says why."""
        started: list[Mount] = []
        for key, app in apps.items():
            runner = LifespanRunner(
                app, self.config.LIFESPAN, f"app at {shown(key)}",
                self.server.lifespan.extensions,
            )  # fmt: skip
            try:
                await asyncio.wait_for(runner.startup(), live.STARTUP_TIMEOUT)
            except (LifespanFailure, TimeoutError) as exc:
                _abandon(runner)
                for mount in reversed(started):
                    await _shut_down(mount)
                if isinstance(exc, TimeoutError):
                    reason = f"app at {shown(key)}: lifespan startup took more than " \
                             f"{live.STARTUP_TIMEOUT:g}s"
                else:
                    reason = str(exc)
                raise AdminError(422, reason) from None
            started.append(Mount(key, app, runner))
        return started

    async def _retire(self, removed: list[Mount]) -> None:
        """Once the removed mounts' requests in flight end (GRACEFUL_TIMEOUT at most),
        their lifespan shutdown."""
        timeout = self.config.GRACEFUL_TIMEOUT
        if not await self.drained(removed, timeout):
            logger.warning("Admin: requests still in flight after %gs (GRACEFUL_TIMEOUT); "
                           "shutting the old app(s) down anyway", timeout)
        failures = [reason for mount in removed if (reason := await _shut_down(mount))]
        if failures:
            raise AdminError(500, "unmounted, but " + "; ".join(failures))

    async def drained(self, removed: list[Mount], timeout: float) -> bool:
        return await wait_for(lambda: not any(m.active for m in removed), timeout)


class _Mounted(LifespanRunner):
    """The server's lifespan once its lone app is mounted in a Router: started
    already; ``shutdown`` shuts down every app still mounted, newest first, as
    the Router's own lifespan does (one LifespanFailure naming each failure)."""

    def __init__(self, router: Router, first: LifespanRunner) -> None:
        super().__init__(router, first.mode, first.name, first.extensions)
        self.router = router
        self.state = first.state

    async def startup(self) -> dict[str, Any]:
        return self.state

    async def shutdown(self) -> None:
        errors = []
        for runner in reversed(self.router._started):
            try:
                await runner.shutdown()
            except LifespanFailure as exc:
                errors.append(f"{exc.name}: {exc.reason}")
        if errors:
            raise LifespanFailure(self.name, "shutdown", "; ".join(errors))


async def _shut_down(mount: Mount) -> str:
    """Run ``mount``'s lifespan shutdown; the failure's reason, or ""."""
    if mount.runner is None:
        return ""
    try:
        await mount.runner.shutdown()
    except LifespanFailure as exc:
        logger.error("%s", exc)
        return str(exc)
    return ""


def _abandon(runner: LifespanRunner) -> None:
    """Cancel the lifespan task of an app whose startup failed or hung."""
    task = runner._task  # the runner keeps no other handle on it
    if task is not None:
        task.cancel()


#: fork: how many children MAX_PROCESSES may allow without a restart.
SLOT_CAPACITY = 65536


class _Spare:
    """The slots out of circulation, as a stack: those taken out (``append``), then
    the never-used ones from ``fresh`` up, lowest first, made as they are taken. (A
    list of all SLOT_CAPACITY of them was 2.4 MiB of int objects in the fork
    parent, whose every page each fork copies the page tables of.)"""

    __slots__ = ("taken_out", "fresh", "capacity")

    def __init__(self, fresh: int, capacity: int) -> None:
        self.taken_out: list[int] = []
        self.fresh = fresh
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self.taken_out) + self.capacity - self.fresh

    def append(self, slot: int) -> None:
        self.taken_out.append(slot)

    def pop(self) -> int:
        if self.taken_out:
            return self.taken_out.pop()
        if self.fresh >= self.capacity:
            raise IndexError("pop from an empty pool of spare slots")
        self.fresh += 1
        return self.fresh - 1


class SlotPool(list[int]):
    """``ForkServer.free_slots`` for a MAX_PROCESSES that changes while children hold
    slots: ``limit`` slots circulate out of ``capacity``; a shrink takes free slots
    out at once and those in use as their children exit."""

    def __init__(self, limit: int, capacity: int) -> None:
        super().__init__(range(limit - 1, -1, -1))
        self.limit = limit
        self.spare = _Spare(limit, capacity)
        #: Slots to take out of circulation as they come back.
        self.owed = 0

    def append(self, slot: int) -> None:
        if self.owed:
            self.owed -= 1
            self.spare.append(slot)
        else:
            super().append(slot)

    def resize(self, limit: int) -> None:
        for _ in range(limit - self.limit):
            if self.owed:
                self.owed -= 1  # a slot in use stays in circulation
            else:
                self.insert(0, self.spare.pop())
        for _ in range(self.limit - limit):
            if self:
                self.spare.append(self.pop(0))
            else:
                self.owed += 1
        self.limit = limit


class ForkLive(AsyncLive):
    """The write side of the fork model's ``AdminBackend``: ``ForkLive(fork_server)``,
    made before it serves."""

    model = "fork"
    LIVE = FORK_LIVE

    def __init__(self, server: ForkServer, target: str | None = None) -> None:
        super().__init__(server, target)
        self.fork_server = server
        assert not server.children, "make the live object before the server serves"
        limit = server.config.MAX_PROCESSES
        capacity = max(limit, SLOT_CAPACITY)
        server.free_slots = self.slots = SlotPool(limit, capacity)
        self.capacity = capacity

    async def apply_config(self, changes: dict[str, Any]) -> None:
        wanted = changes.get("MAX_PROCESSES", 0)
        if isinstance(wanted, int) and wanted > self.capacity:
            raise AdminError(409, f"MAX_PROCESSES above {self.capacity} needs a restart")
        await super().apply_config(changes)

    def put_in_force(self, config: Config) -> None:
        server = self.fork_server
        super().put_in_force(config)
        server.websocket_cap = websocket_cap(config)
        if config.MAX_PROCESSES != self.slots.limit:
            self.slots.resize(config.MAX_PROCESSES)
        # children from now on see the new config; requests waiting for a
        # slot go now if there is one (``refresh_zygote`` forks what waits)
        server.refresh_zygote()

    def _routes_changed(self) -> None:
        super()._routes_changed()
        self.fork_server.refresh_zygote()  # children from now on see the new table

    async def _import(self, targets: dict[str, str], app_dir: str, fresh: bool,
                      app_dirs: list[str] | None = None) -> dict[str, Any]:
        # the import runs in a thread and holds its modules' import locks: a
        # child forked meanwhile would inherit them held and hang at its first
        # import of the same module (found by review)
        with self.fork_server.hold_forks():
            return await super()._import(targets, app_dir, fresh, app_dirs)

    async def drained(self, removed: list[Mount], timeout: float) -> bool:
        """Requests run in children: wait for those forked before the change."""
        server = self.fork_server
        kept = [*server.children.values(), *server.spawning.values()]  # (their ids stay theirs)
        before = {id(child) for child in kept}

        def gone() -> bool:
            now = (*server.children.values(), *server.spawning.values())
            return not any(id(child) in before for child in now)

        return await wait_for(gone, timeout)
