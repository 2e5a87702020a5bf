"""Per-request figures: what every serving process counts, and their sum.

``Totals`` is what the admin app reads (``AdminBackend.totals()``): counts by
route, method and status class, a latency histogram per route, bytes, and
what is open now. How a process records them on its hot path, and how a fork
child or a prefork worker hands them to the process serving the admin socket
(shared memory, no lock, no syscall per request), lives below ``Totals``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "METHODS", "STATUS_CLASSES", "RouteTotals", "Totals"]

#: The methods counted by name; any other is counted as "OTHER".
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Upper bounds in seconds of the latency histogram's buckets (the last: +Inf).
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf,
)


@dataclass
class RouteTotals:
    """One route's figures. ``buckets[i]``: requests whose latency was at most
    ``LATENCY_BUCKETS[i]`` and above the bucket before (not cumulative)."""

    #: (method, status class) -> requests answered
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    latency_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))

    @property
    def count(self) -> int:
        return sum(self.requests.values())

    def add(self, other: RouteTotals) -> None:
        for key, n in other.requests.items():
            self.requests[key] = self.requests.get(key, 0) + n
        self.latency_sum += other.latency_sum
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


@dataclass
class Totals:
    """The figures of one process, or of several added together."""

    in_flight: int = 0
    http_connections: int = 0
    websocket_connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: route prefix as in APPS ("/" when one app is served) -> its figures
    routes: dict[str, RouteTotals] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(r.count for r in self.routes.values())

    def by_class(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUS_CLASSES, 0)
        for route in self.routes.values():
            for (_, cls), n in route.requests.items():
                counts[cls] = counts.get(cls, 0) + n
        return counts

    def latency(self) -> RouteTotals:
        """Every route's latency together."""
        whole = RouteTotals()
        for route in self.routes.values():
            whole.add(route)
        return whole

    def add(self, other: Totals) -> None:
        self.in_flight += other.in_flight
        self.http_connections += other.http_connections
        self.websocket_connections += other.websocket_connections
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        for name, route in other.routes.items():
            self.routes.setdefault(name, RouteTotals()).add(route)


def quantile(buckets: list[int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of a histogram, interpolated inside its bucket
    as Prometheus' histogram_quantile does; None when it is empty."""
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for bound, n in zip(LATENCY_BUCKETS, buckets, strict=True):
        if n and seen + n >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: its bound is all we know
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        lower = bound if not math.isinf(bound) else lower
    return lower
