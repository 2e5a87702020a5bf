"""``GET /status`` and ``GET /status/series``: the server at a glance.

``Sampler`` keeps about one sample a second, taken by a task the app starts
with its lifespan (``run``) and, where no lifespan ran, lazily by the next
request (``maybe_sample``): a ring of (time, total requests) for the 1, 5
and 15 minute rates (bounded: ``HISTORY`` samples) and a ring of per-second
points for the dashboard's charts (``SERIES`` of them: requests/s, p50 and
p99 of that second, status classes per second, processes and their total
RSS). A rate over a window longer than the server's life is the rate over
its life. Everything psutil reads is read in a thread.

The figures are sampled every second (cheap: the counts, no system call);
psutil (the processes' RSS) only while someone looks (``looked``: a
``/status``, ``/status/series`` or ``/metrics`` request in the last
``WATCHED`` seconds); a point taken while nobody looked has ``rss`` None (a
gap in the dashboard's chart). A psutil thread every second in the serving
process cost throughput for nothing (async: GIL contention; fork: psutil's
modules and a thread in the process that forks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import __version__
from .backend import AdminBackend
from .configapi import masked
from .figures import STATUS_CLASSES, Totals, quantile
from .probe import Measure, ProcessWatch, system_figures

__all__ = ["Sampler", "build_status"]

WINDOWS = {"1m": 60.0, "5m": 300.0, "15m": 900.0}


@dataclass
class _Mark:
    """The last sample's raw figures, which the next one is a difference from."""

    t: float
    requests: int
    classes: dict[str, int]
    buckets: list[int]


class Sampler:
    INTERVAL = 1.0
    #: (time, requests) samples kept: a little more than the longest window
    HISTORY = 960
    #: per-second points kept for the charts (five minutes)
    SERIES = 300
    #: psutil is read while a look (``looked``) is at most this old, in seconds
    WATCHED = 10.0

    def __init__(self, backend: AdminBackend, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.clock = clock
        self.wall = wall
        self.watch = ProcessWatch()
        self.history: deque[tuple[float, int]] = deque(maxlen=self.HISTORY)
        self.series: deque[dict[str, Any]] = deque(maxlen=self.SERIES)
        self._mark: _Mark | None = None
        self._busy = False
        #: clock() of the last look (None: never)
        self._looked: float | None = None

    def looked(self) -> None:
        """Someone reads the figures: psutil is sampled for the next WATCHED seconds."""
        self._looked = self.clock()

    def watched(self) -> bool:
        return self._looked is not None and self.clock() - self._looked <= self.WATCHED

    async def sample(self) -> None:
        """Take one sample (psutil in a thread, if ``watched``)."""
        infos = self.backend.processes()
        rss = None
        if self.watched():
            measures = await asyncio.to_thread(self.watch.measure, [p.pid for p in infos])
            rss = sum(m.rss for m in measures.values())
        self.record(self.backend.totals(), len(infos), rss)

    def record(self, totals: Totals, processes: int, rss: int | None) -> None:
        """Add a sample of ``totals`` taken now (``rss`` None: not measured)."""
        now = self.clock()
        requests = totals.requests
        classes = totals.by_class()
        buckets = totals.latency().buckets
        self.history.append((now, requests))
        mark, self._mark = self._mark, _Mark(now, requests, classes, buckets)
        if mark is None or now <= mark.t:
            return
        span = now - mark.t
        delta = [max(0, a - b) for a, b in zip(buckets, mark.buckets, strict=True)]
        self.series.append({
            "t": round(self.wall(), 3),
            "rps": round(max(0, requests - mark.requests) / span, 3),
            "p50": quantile(delta, 0.5),
            "p99": quantile(delta, 0.99),
            "classes": {cls: round(max(0, classes.get(cls, 0) - mark.classes.get(cls, 0)) / span,
                                   3) for cls in STATUS_CLASSES},
            "processes": processes,
            "rss": rss,
        })

    async def _take(self) -> None:
        self._busy = True
        try:
            await self.sample()
        finally:
            self._busy = False

    async def maybe_sample(self) -> None:
        """A look (``looked``); sample if the last one is older than INTERVAL (when
        no task samples)."""
        self.looked()
        if self._busy or (self._mark is not None and
                          self.clock() - self._mark.t < self.INTERVAL):
            return
        await self._take()

    async def run(self) -> None:
        """Sample every INTERVAL until cancelled."""
        while True:
            started = self.clock()
            if not self._busy:
                with contextlib.suppress(Exception):  # a failed look is a gap, not the end
                    await self._take()
            await asyncio.sleep(max(0.05, self.INTERVAL - (self.clock() - started)))

    def rates(self, requests: int) -> dict[str, float]:
        """Requests per second over each window, ``requests`` being the count now."""
        now = self.clock()
        rates = {}
        for name, window in WINDOWS.items():
            base = next(((t, n) for t, n in self.history if now - t <= window), None)
            if base is None or now - base[0] <= 0:
                rates[name] = 0.0
            else:
                rates[name] = round(max(0, requests - base[1]) / (now - base[0]), 3)
        return rates


def totals_figures(totals: Totals, sampler: Sampler) -> dict[str, Any]:
    whole = totals.latency()
    routes = {}
    for name, route in sorted(totals.routes.items()):
        routes[name] = {
            "requests": route.count,
            "p50": quantile(route.buckets, 0.5),
            "p99": quantile(route.buckets, 0.99),
        }
    return {
        "requests": totals.requests,
        "requests_per_second": sampler.rates(totals.requests),
        "in_flight": totals.in_flight,
        "connections": {"http": totals.http_connections,
                        "websocket": totals.websocket_connections},
        "status_classes": totals.by_class(),
        "latency": {q: quantile(whole.buckets, v)
                    for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "bytes": {"in": totals.bytes_in, "out": totals.bytes_out},
        "routes": routes,
    }


async def build_status(backend: AdminBackend, sampler: Sampler,
                       watch: ProcessWatch) -> dict[str, Any]:
    infos = backend.processes()
    totals = backend.totals()
    counters = backend.counters()
    config = masked(backend.config)

    def look() -> tuple[dict[int, Measure], dict[str, Any]]:
        return watch.measure([p.pid for p in infos]), system_figures()

    measures, system = await asyncio.to_thread(look)
    now = time.time()
    processes = []
    for info in infos:
        measure = measures.get(info.pid)
        if measure is None:
            continue  # gone since the backend listed it
        processes.append({
            "pid": info.pid, "role": info.role, "state": info.state,
            "started": info.started, "age": round(max(0.0, now - info.started), 3),
            "requests": info.requests, "detail": info.detail,
            "cpu_percent": measure.cpu_percent, "rss": measure.rss,
        })
    system["open_fds"] = sum(m.fds for m in measures.values())
    return {
        "model": backend.model,
        "version": __version__,
        "pid": os.getpid(),
        "started": backend.started,
        "uptime": round(max(0.0, now - backend.started), 3),
        "config": config,
        "counters": counters,
        "processes": processes,
        "totals": totals_figures(totals, sampler),
        "system": system,
    }


def series(sampler: Sampler) -> dict[str, Any]:
    return {"interval": sampler.INTERVAL, "points": list(sampler.series)}
