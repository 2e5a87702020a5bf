"""The admin socket's endpoints, each ``async (request) -> Answer``.

Every change (config, apps, reload, save) is logged on ``qt_server``: who
(the client's address, and "token" or "dashboard session"), what, the old
and the new value (a secret masked). Changes are made one at a time (a
lock): a PATCH's check and its apply see the same config.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import os

from ..logs import printable
from .backend import AdminBackend, AdminError
from .configapi import checked_changes, masked, save_config, shown
from .install import Installer, redacted
from .probe import ProcessWatch
from .status import Sampler, build_status, series
from .web import Answer, Refusal, Request, json_answer

__all__ = ["Endpoints"]

logger = logging.getLogger("qt_server")


def log_change(request: Request, what: str) -> None:
    logger.info("admin: %s, by %s (%s)", printable(what), request.client, request.identity)


class Endpoints:
    def __init__(self, backend: AdminBackend, sampler: Sampler, installer: Installer) -> None:
        self.backend = backend
        self.sampler = sampler
        self.installer = installer
        self.watch = ProcessWatch()
        self.metrics_watch = ProcessWatch()
        self._lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # -- read --

    async def status(self, request: Request) -> Answer:
        await self.sampler.maybe_sample()
        return json_answer(200, await build_status(self.backend, self.sampler, self.watch))

    async def series(self, request: Request) -> Answer:
        await self.sampler.maybe_sample()
        return json_answer(200, series(self.sampler))

    async def metrics(self, request: Request) -> Answer:
        self.sampler.looked()
        # prometheus_client at the first scrape, not at start (the serving process stays lean)
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        from .metrics import render_metrics

        body = await render_metrics(self.backend, self.metrics_watch)
        return Answer(200, body, CONTENT_TYPE_LATEST)

    async def get_config(self, request: Request) -> Answer:
        config = self.backend.config
        return json_answer(200, {
            "config": masked(config),
            "live": sorted(self.backend.live_keys()),
            "file": config.file_path,
        })

    async def get_apps(self, request: Request) -> Answer:
        return json_answer(200, {"apps": [dataclasses.asdict(a) for a in self.backend.apps()]})

    # -- change --

    async def patch_config(self, request: Request) -> Answer:
        body = await request.json_object()
        async with self.lock:
            config = self.backend.config
            # the checks may read files (TLS certificates): off the loop, on a copy
            changes = await asyncio.to_thread(
                checked_changes, copy.deepcopy(config), body, self.backend.live_keys())
            old = {key: copy.deepcopy(getattr(config, key)) for key in changes}
            try:
                await self.backend.apply_config(changes)
            except AdminError as exc:
                raise Refusal(exc.status, exc.reason) from None
            changed = {}
            for key, value in changes.items():
                before, after = shown(key, old[key]), shown(key, value)
                changed[key] = {"old": before, "new": after}
                log_change(request, f"config {key} {before!r} -> {after!r}")
            return json_answer(200, {"changed": changed, "config": masked(self.backend.config)})

    async def save_config(self, request: Request) -> Answer:
        async with self.lock:
            config = copy.deepcopy(self.backend.config)
            path, keys = await asyncio.to_thread(save_config, config)
        log_change(request, f"config saved to {path} ({len(keys)} settings)")
        backup = path + ".bak"
        return json_answer(200, {"saved": path, "keys": keys,
                                 "backup": backup if os.path.exists(backup) else None})

    async def post_apps(self, request: Request) -> Answer:
        body = await request.json_object()
        route, target = body.get("route"), body.get("app")
        if not isinstance(route, str) or not route.startswith("/"):
            raise Refusal(400, "'route' must be a string starting with '/'", key="route")
        if not isinstance(target, str) or ":" not in target:
            raise Refusal(400, "'app' must be a 'module:attribute' string", key="app")
        unknown = sorted(set(body) - {"route", "app", "git", "ref", "requirements"})
        if unknown:
            raise Refusal(400, f"unknown field {unknown[0]!r}", key=unknown[0])
        if "git" in body:  # the clone runs unlocked; its mount takes the lock
            info = await self.installer.install(body, route, target, self.lock)
            what = f"app {target} from git {redacted(str(body['git']))!r}"
        else:
            async with self.lock:
                try:
                    info = await self.backend.mount(route, target)
                except AdminError as exc:
                    raise Refusal(exc.status, exc.reason) from None
            what = f"app {target}"
        log_change(request, f"{what} mounted at {route}")
        return json_answer(201, dataclasses.asdict(info))

    async def delete_app(self, request: Request) -> Answer:
        route = "/" + request.path[len("/apps/"):]
        async with self.lock:
            try:
                await self.backend.unmount(route)
            except AdminError as exc:
                raise Refusal(exc.status, exc.reason) from None
        log_change(request, f"app at {route} unmounted")
        return json_answer(200, {"unmounted": route})

    async def reload(self, request: Request) -> Answer:
        async with self.lock:
            try:
                await self.backend.reload()
            except AdminError as exc:
                raise Refusal(exc.status, exc.reason) from None
        log_change(request, "apps reloaded")
        return json_answer(200, {"reloaded": True})

