"""Change on the fly in the ``prefork`` model: in the master, ``PreforkLive(arbiter)``.

WORKERS, MAX_REQUESTS(_JITTER) and WORKER_TIMEOUT are the master's own: the
pool is resized as SIGTTIN / SIGTTOU do, new workers get the new limit. Every
other live key, and every change of the apps, is a graceful replacement of the
workers as SIGHUP makes (without re-reading the config file): new workers
start with the new config (importing the new APPS, or serving the app the
master imported afresh with PRELOAD), the old ones drain their requests in
flight and exit once the new ones serve. A call returns once the new workers
serve; if they cannot start, the change is taken back, the old workers serve
on (they were never stopped) and AdminError 422 gives the workers' reason.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..importer import AppImportError, build_app, use_app_dir
from ..models.slot import beat_interval
from . import live
from .backend import AdminError, AppInfo
from .live import (
    FORK_POOL_LIVE,
    PREFORK_LIVE,
    PREFORK_MASTER_KEYS,
    SOURCE,
    apply_logging,
    changed_keys,
    check_import,
    forget_app_modules,
    log_changes,
    route_key,
    shown,
    updated_config,
    wait_for,
)

if TYPE_CHECKING:
    from ..asgi.types import ASGIApp
    from ..models.arbiter import Arbiter

__all__ = ["PreforkLive"]

logger = logging.getLogger("qt_server")

#: Seconds new workers get to serve (imports, lifespan startup) before the change
#: is taken back.
START_TIMEOUT = 60.0
#: Beyond GRACEFUL_TIMEOUT: how long an unmount waits for the old workers to exit.
STOP_SLACK = 5.0


class PreforkLive:
    """The write side of the prefork model's ``AdminBackend``, in the master."""

    model = "prefork"

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        #: How each route was mounted (source, app_dir), by the router's key; the
        #: routes themselves are the config's (a SIGHUP may change them).
        self.mounted: dict[str, AppInfo] = {}
        self._lock = asyncio.Lock()
        # the workers import from APP_DIR: so do the import checks (their subprocess
        # gets this sys.path), even when the master itself imports no app (no preload)
        use_app_dir(arbiter.config.APP_DIR)

    @property
    def table(self) -> dict[str, AppInfo]:
        """The apps the workers serve now, by the router's key."""
        config, target = self.arbiter.config, self.arbiter.target
        if config.APPS and target is None:
            routes = dict(config.APPS)
        else:
            routes = {"/": target if isinstance(target, str) else ""}
        table = {}
        for route, app in routes.items():
            key = route_key(route)
            known = self.mounted.get(key)
            table[key] = known if known and known.target == app else AppInfo(route, app)
        return table

    @property
    def config(self) -> Config:
        return self.arbiter.config

    def live_keys(self) -> frozenset[str]:
        """A fork-model master's workers (fork parents) take the fork model's keys too."""
        return FORK_POOL_LIVE if self.config.MODEL == "fork" else PREFORK_LIVE

    async def apply_config(self, changes: dict[str, Any]) -> None:
        async with self._lock:
            old = self.config
            keys = self.live_keys()
            new = updated_config(old, changes, keys)
            apply_logging(old, new)
            replace = bool(changed_keys(old, new, keys - PREFORK_MASTER_KEYS))
            # the workers beat at a pace WORKER_TIMEOUT sets: a new pace, new workers
            paces = (beat_interval(old.WORKER_TIMEOUT), beat_interval(new.WORKER_TIMEOUT))
            replace = replace or paces[0] != paces[1]
            arbiter = self.arbiter
            try:
                await self._switch(new, replace, arbiter.app, arbiter.target)
            except AdminError:
                apply_logging(new, old)
                raise
            log_changes(old, new, keys)

    # apps -------------------------------------------------------------------------

    def apps(self) -> list[AppInfo]:
        table = self.table
        return [table[key] for key in sorted(table, key=lambda k: (-len(k), k))]

    async def mount(self, route: str, target: str, source: str = "admin",
                    app_dir: str | None = None) -> AppInfo:
        key = route_key(route)
        async with self._lock:
            if key in self.table:
                raise AdminError(409, f"{shown(key)} is mounted already")
            await check_import(target, app_dir or "")
            if app_dir:
                use_app_dir(app_dir)  # the workers forked from now on import from it too
            apps = self._apps()
            apps[shown(key)] = target
            await self._switch_apps(apps, fresh=False)
            extra = {"app_dir": app_dir} if app_dir else {}
            info = self.mounted[key] = AppInfo(shown(key), target, source, extra)
            logger.debug("Admin: mounted %s at %s (new workers serve it)", target, shown(key))
            return info

    async def unmount(self, route: str) -> None:
        key = route_key(route)
        async with self._lock:
            if key not in self.table:
                raise AdminError(404, f"nothing is mounted at {shown(key)}")
            if len(self.table) == 1:
                raise AdminError(409, "the last app cannot be unmounted in prefork")
            apps = {r: t for r, t in self._apps().items() if route_key(r) != key}
            old = self.arbiter.generation
            await self._switch_apps(apps, fresh=False)
            self.mounted.pop(key, None)
            logger.info("Admin: unmounted %s; the old workers drain", shown(key))
            # DELETE returns once the workers that served it have drained and
            # run its lifespan shutdown
            workers = self.arbiter.workers
            await wait_for(lambda: not any(w.generation == old for w in workers.values()),
                           self.config.GRACEFUL_TIMEOUT + STOP_SLACK)

    async def reload(self) -> None:
        async with self._lock:
            for info in self.table.values():
                if info.target:
                    await check_import(info.target, str(info.extra.get("app_dir", "")))
            await self._switch_apps(self._apps(), fresh=True)
            logger.info("Admin: reloaded; new workers serve the apps imported afresh")

    # the steps ----------------------------------------------------------------------

    def _apps(self) -> dict[str, str]:
        """The APPS table the workers serve (the one app they were started with at "/")."""
        config, target = self.config, self.arbiter.target
        if config.APPS and target is None:
            return dict(config.APPS)
        if not isinstance(target, str) or config.FACTORY:
            raise AdminError(409, "the server serves an app object or a FACTORY: "
                                  "changing its apps needs APPS and a restart")
        return {"/": target}

    async def _switch_apps(self, apps: dict[str, str], fresh: bool) -> None:
        config = copy.deepcopy(self.config)
        config.update({"APPS": apps}, SOURCE)
        app = None
        if self.arbiter.app is not None:  # PRELOAD: the master imports, the workers inherit
            arbiter = self.arbiter
            arbiter.spawns_held += 1  # (see Arbiter.spawns_held)
            try:
                app = await asyncio.to_thread(self._preload, config, fresh)
            finally:
                arbiter.spawns_held -= 1
        await self._switch(config, True, app, None)

    def _preload(self, config: Config, fresh: bool) -> ASGIApp:
        if fresh:
            dirs = [str(info.extra.get("app_dir", "")) for info in self.table.values()]
            forget_app_modules([config.APP_DIR, *dirs])
        try:
            return build_app(config.APPS, None, config.LIFESPAN, False, config.APP_DIR)
        except AppImportError as exc:
            raise AdminError(422, str(exc)) from None

    async def _switch(self, config: Config, replace: bool, app: ASGIApp | None,
                      target: str | ASGIApp | None) -> None:
        """Put ``config`` in force; return once the pool serves with it, else take it back."""
        arbiter = self.arbiter
        before = (arbiter.config, arbiter.app, arbiter.target, arbiter.generation)
        arbiter.boot_failure = None
        generation = arbiter.switch(config, replace, app, target)
        failure = await self._until_serving(generation)
        if failure:
            logger.error("Admin: %s; taking the change back", failure)
            old_config, old_app, old_target, old_generation = before
            arbiter.switch(old_config, replace, old_app, old_target, keep=old_generation)
            raise AdminError(422, failure)

    async def _until_serving(self, generation: int) -> str:
        """Wait until the current workers are as many as wanted, all serving; else why not."""
        arbiter = self.arbiter

        def settled() -> bool:
            if arbiter.stopping or arbiter.generation != generation:
                return True
            if arbiter.boot_failure and arbiter.boot_failure[0] == generation:
                return True
            current = [w for w in arbiter.workers.values()
                       if w.generation == generation and not w.leaving]
            return len(current) == arbiter.num_workers and all(w.ready for w in current)

        timeout = max(START_TIMEOUT, live.IMPORT_TIMEOUT + live.STARTUP_TIMEOUT)
        if not await wait_for(settled, timeout):
            return f"the new workers were not serving after {timeout:g}s"
        if arbiter.stopping:
            raise AdminError(503, "the server is stopping")
        if arbiter.generation != generation:
            # a SIGHUP replaced the workers meanwhile: they carry this change too
            # (a reload keeps the values set through the admin socket)
            return ""
        if arbiter.boot_failure and arbiter.boot_failure[0] == generation:
            return f"the new workers cannot start: {arbiter.boot_failure[1]}"
        return ""
