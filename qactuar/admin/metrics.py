"""``GET /metrics``: the Prometheus text format, by ``prometheus_client``.

The figures are read on the loop (``Snapshot.take``: the backend is not
thread-safe), psutil and the rendering run in a thread. Each render builds
its own ``CollectorRegistry`` with one ``Collector`` over the snapshot,
never the global registry (which would mix in the admin process's own
metrics and keep state between renders). The backend's totals include the
retired processes' figures, so the counters never go backwards.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .. import __version__
from .backend import AdminBackend, ProcessInfo
from .figures import LATENCY_BUCKETS, Totals
from .probe import Measure, ProcessWatch

__all__ = ["FigureCollector", "Snapshot", "render_metrics"]


@dataclass
class Snapshot:
    model: str
    totals: Totals
    processes: list[ProcessInfo]
    counters: dict[str, int]
    measures: dict[int, Measure]

    @classmethod
    def take(cls, backend: AdminBackend) -> Snapshot:
        return cls(backend.model, backend.totals(), backend.processes(), backend.counters(), {})


class FigureCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        totals = snap.totals
        info = GaugeMetricFamily("qactuar_info", "The server's version and process model.",
                                 labels=["version", "model"])
        info.add_metric([__version__, snap.model], 1)
        yield info

        requests = CounterMetricFamily(
            "qactuar_requests", "Requests answered, by route, method and status class.",
            labels=["route", "method", "status_class"])
        duration = HistogramMetricFamily(
            "qactuar_request_duration_seconds", "Time to answer a request, by route.",
            labels=["route"])
        for route, figures in sorted(totals.routes.items()):
            for (method, cls), n in sorted(figures.requests.items()):
                requests.add_metric([route, method, cls], n)
            cumulative = 0
            buckets = []
            for bound, n in zip(LATENCY_BUCKETS, figures.buckets, strict=True):
                cumulative += n
                buckets.append(("+Inf" if math.isinf(bound) else repr(float(bound)),
                                cumulative))
            duration.add_metric([route], buckets, figures.latency_sum)
        yield requests
        yield duration

        yield GaugeMetricFamily("qactuar_requests_in_flight", "Requests being answered now.",
                                value=totals.in_flight)
        connections = GaugeMetricFamily("qactuar_connections", "Open client connections.",
                                        labels=["kind"])
        connections.add_metric(["http"], totals.http_connections)
        connections.add_metric(["websocket"], totals.websocket_connections)
        yield connections
        yield CounterMetricFamily("qactuar_bytes_received", "Request bytes received.",
                                  value=totals.bytes_in)
        yield CounterMetricFamily("qactuar_bytes_sent", "Response bytes sent.",
                                  value=totals.bytes_out)

        processes = GaugeMetricFamily("qactuar_processes", "Processes of the server, by role.",
                                      labels=["role"])
        for role, n in sorted(Counter(p.role for p in snap.processes).items()):
            processes.add_metric([role], n)
        yield processes
        yield CounterMetricFamily(
            "qactuar_process_restarts", "Processes that died and were replaced.",
            value=snap.counters.get("restarts", 0))
        yield CounterMetricFamily(
            "qactuar_process_recycles",
            "Processes replaced after MAX_REQUESTS or a reload.",
            value=snap.counters.get("recycles", 0))

        cpu = CounterMetricFamily("qactuar_process_cpu_seconds",
                                  "CPU time (user + system) of each process.",
                                  labels=["pid", "role"])
        rss = GaugeMetricFamily("qactuar_process_resident_memory_bytes",
                                "Resident memory of each process.", labels=["pid", "role"])
        for proc in snap.processes:
            measure = snap.measures.get(proc.pid)
            if measure is None:
                continue
            cpu.add_metric([str(proc.pid), proc.role], measure.cpu_seconds)
            rss.add_metric([str(proc.pid), proc.role], measure.rss)
        yield cpu
        yield rss


def _render(snapshot: Snapshot, watch: ProcessWatch) -> bytes:
    snapshot.measures = watch.measure([p.pid for p in snapshot.processes])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FigureCollector(snapshot))
    return generate_latest(registry)


async def render_metrics(backend: AdminBackend, watch: ProcessWatch) -> bytes:
    snapshot = Snapshot.take(backend)
    return await asyncio.to_thread(_render, snapshot, watch)
