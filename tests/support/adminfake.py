"""The admin app's tests' stand-in for a process model, and serving the admin app.

``FakeBackend`` implements ``qactuar.admin.backend.AdminBackend`` with
figures the test sets (``totals``, ``counters``, ``procs``) and records
every call that changes something in ``calls``. ``serve_admin(backend,
**app_options)`` serves ``admin_app(backend, TOKEN, ...)`` with qactuar's
own core in a thread (``serve_qactuar``: the lifespan runs, so the sampler
does) and yields the ``RunningServer``. ``TOKEN`` is made per test run;
``assert_no_token`` fails if a text holds it or any 8-character piece of it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

from qactuar.admin.app import AdminApp, admin_app
from qactuar.admin.backend import AdminError, AppInfo, ProcessInfo
from qactuar.admin.figures import LATENCY_BUCKETS, RouteTotals, Totals
from qactuar.admin.live import SOURCE as LIVE_SOURCE
from qactuar.config import Config

from .threaded import RunningServer, serve_qactuar

__all__ = ["LIVE", "TOKEN", "FakeBackend", "assert_no_token", "sample_totals", "serve_admin"]

TOKEN = "qt-" + secrets.token_urlsafe(24)
LIVE = frozenset({"REQUEST_TIMEOUT", "MAX_PROCESSES", "MAX_WEBSOCKETS", "ACCESS_LOG",
                  "LOG_LEVEL", "SSL_KEYFILE_PASSWORD", "ADMIN_ALLOW_INSTALL", "HEADERS"})


def sample_totals() -> Totals:
    """Two routes, a few status classes, latencies in three buckets."""
    blog = RouteTotals(requests={("GET", "2xx"): 40, ("POST", "4xx"): 2, ("GET", "5xx"): 1},
                       latency_sum=1.25)
    blog.buckets[LATENCY_BUCKETS.index(0.001)] = 30
    blog.buckets[LATENCY_BUCKETS.index(0.01)] = 12
    blog.buckets[LATENCY_BUCKETS.index(1.0)] = 1
    api = RouteTotals(requests={("GET", "2xx"): 7}, latency_sum=0.5)
    api.buckets[LATENCY_BUCKETS.index(0.1)] = 7
    return Totals(in_flight=3, http_connections=5, websocket_connections=2, bytes_in=1234,
                  bytes_out=56789, routes={"/blog": blog, "/api/v2": api})


class FakeBackend:
    model = "async"

    def __init__(self, config: Config | None = None, live: frozenset[str] = LIVE) -> None:
        self.started = time.time() - 10.0
        self._config = config if config is not None else Config()
        self.live = live
        self.figures = sample_totals()
        self.counts = {"workers": 2, "restarts": 1, "recycles": 3}
        self.procs = [ProcessInfo(os.getpid(), "process", "serving", time.time() - 5, 49)]
        self.mounted: dict[str, AppInfo] = {}
        #: (name, arguments) of every call that changes something
        self.calls: list[tuple[str, Any]] = []
        #: what app_dir held when mount was called with one
        self.app_dir_files: list[str] = []
        #: the next mount raises this
        self.mount_error: AdminError | None = None

    @property
    def config(self) -> Config:
        return self._config

    def processes(self) -> list[ProcessInfo]:
        return list(self.procs)

    def totals(self) -> Totals:
        whole = Totals()
        whole.add(self.figures)
        return whole

    def counters(self) -> dict[str, int]:
        return dict(self.counts)

    def live_keys(self) -> frozenset[str]:
        return self.live

    async def apply_config(self, changes: dict[str, Any]) -> None:
        self.calls.append(("apply_config", dict(changes)))
        self._config.update(changes, LIVE_SOURCE)  # as updated_config does

    def apps(self) -> list[AppInfo]:
        return list(self.mounted.values())

    async def mount(self, route: str, target: str, source: str = "admin",
                    app_dir: str | None = None) -> AppInfo:
        self.calls.append(("mount", (route, target, source, app_dir)))
        if app_dir is not None:
            self.app_dir_files = sorted(os.listdir(app_dir))
        if self.mount_error is not None:
            raise self.mount_error
        info = self.mounted[route] = AppInfo(route, target, source)
        return info

    async def unmount(self, route: str) -> None:
        self.calls.append(("unmount", route))
        if route not in self.mounted:
            raise AdminError(404, f"no app is mounted at {route}")
        del self.mounted[route]

    async def reload(self) -> None:
        self.calls.append(("reload", None))


@contextlib.contextmanager
def serve_admin(backend: FakeBackend, **options: Any) -> Iterator[RunningServer]:
    """``admin_app(backend, TOKEN, **options)`` served in a thread; ``.app`` is the app."""
    settings = options.pop("settings", {})
    app: AdminApp = admin_app(backend, TOKEN, **options)
    with serve_qactuar(app, **settings) as served:
        served.app = app  # type: ignore[attr-defined]
        yield served


def assert_no_token(text: str) -> None:
    """``text`` holds neither the token nor any 8-character piece of it."""
    for start in range(len(TOKEN) - 7):
        piece = TOKEN[start:start + 8]
        assert piece not in text, f"a piece of the token ({piece!r}) is in {text[:300]!r}"
