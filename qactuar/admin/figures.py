"""Per-request figures: what every serving process counts, and their sum.

``Totals`` is what the admin app reads (``AdminBackend.totals()``): counts by
route, method and status class, a latency histogram per route, bytes, and
what is open now. How a process records them on its hot path, and how a fork
child or a prefork worker hands them to the process serving the admin socket
(shared memory, no lock, no syscall per request), lives below ``Totals``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "LATENCY_BUCKETS", "METHODS", "STATUS_CLASSES", "UNROUTED", "Recorder", "RouteTotals", "Tally",
    "Totals", "route_prefixes",
]

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


# -- recording: one ``Recorder`` per serving process ------------------------------------------

#: The route of requests no APPS prefix took: the router's 404s, and the
#: errors the server answered before (or instead of) an app: a malformed
#: request (400, 413, 414, 431...), a header timeout (408), a fork child that
#: crashed (502) or ran out of REQUEST_TIMEOUT (504) before it answered.
UNROUTED = ""

_CLASSES = len(STATUS_CLASSES)
_BUCKETS = len(LATENCY_BUCKETS)
#: A route's cells in ``Recorder.cells``: one per (method, status class, latency bucket).
_CELLS = len(METHODS) * _CLASSES * _BUCKETS
#: method -> its offset in a route's cells
_METHOD_AT = {name: i * _CLASSES * _BUCKETS for i, name in enumerate(METHODS)}
_OTHER_AT = _METHOD_AT["OTHER"]
#: status -> its class's offset in a method's cells: 100-599 by their class,
#: 600-999 (an app's own code, with a reason phrase) as 5xx
_CLASS_AT = [min(max(status // 100 - 1, 0), _CLASSES - 1) * _BUCKETS for status in range(1000)]


class Tally(Protocol):
    """What the request path records into (a ``Recorder``)."""

    #: WebSockets accepted and still open (a gauge).
    websockets: int

    def record(
        self, path: str, method: str, status: int, latency: float, received: int, sent: int
    ) -> None: ...

    def server_answered(self, status: int) -> None: ...


def route_prefixes(app: object) -> list[str]:
    """The APPS prefixes ``app`` routes (a ``Router``), else ``["/"]``: one app."""
    from ..routing import Router

    if isinstance(app, Router):
        return [prefix or "/" for prefix, _ in app.routes]
    return ["/"]


class Recorder:
    """What one process counts as it answers, in plain lists and ints.

    Created only with ``ADMIN_ENABLED`` (``ServerState.figures``; None
    otherwise, so the request path pays one ``is None`` test). ``record`` is
    the whole per-request cost: a route match (none when one app is served),
    a dict lookup, a bisect and three additions; no lock, no system call.
    ``cells`` holds, per route, one count per (method, status class, latency
    bucket): index ``route * 680 + method * 85 + class * 17 + bucket``, so
    that a request is one count (the request count by method and class and
    the latency histogram are its sums); ``latency_sums`` the seconds.

    Routes are append-only (``names``): a route unmounted keeps its figures,
    so counters never go backwards; ``set_routes`` changes what matches.
    Gauges other than ``websockets`` (WebSockets accepted and still open in
    this process) are read when asked (``ServerState.totals``), not counted.
    """

    __slots__ = (
        "names", "cells", "latency_sums", "bytes_in", "bytes_out", "websockets", "_table",
        "_only", "_unrouted",
    )

    def __init__(self, routes: list[str] | tuple[str, ...] = ("/",)) -> None:
        self.names: list[str] = []
        self.cells: list[int] = []
        self.latency_sums: list[float] = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.websockets = 0
        #: (prefix without its trailing "/", that + "/", route index), longest first
        self._table: tuple[tuple[str, str, int], ...] = ()
        #: The route index of every request when one app is served at "/", else -1.
        self._only = -1
        self._unrouted = -1
        self.set_routes(routes)

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            self.names.append(name)
            self.cells.extend([0] * _CELLS)
            self.latency_sums.append(0.0)
            return len(self.names) - 1

    def set_routes(self, prefixes: list[str] | tuple[str, ...]) -> None:
        """Route requests by these APPS prefixes from now on ("/" is the root mount)."""
        table = []
        for prefix in prefixes:
            name = "/" + prefix.strip("/") if prefix.strip("/") else "/"
            stripped = name.rstrip("/")
            table.append((stripped, stripped + "/", self._index(name)))
        table.sort(key=lambda entry: len(entry[0]), reverse=True)
        self._table = tuple(table)
        self._only = table[0][2] if len(table) == 1 and not table[0][0] else -1

    def route_of(self, path: str) -> int:
        """The index of the route serving ``path`` (the request target's, before ROOT_PATH)."""
        for prefix, below, index in self._table:
            if not prefix or path == prefix or path.startswith(below):
                return index
        return self.unrouted()

    def unrouted(self) -> int:
        """The index of ``UNROUTED`` (made at its first use)."""
        if self._unrouted < 0:
            self._unrouted = self._index(UNROUTED)
        return self._unrouted

    def record(
        self, path: str, method: str, status: int, latency: float, received: int, sent: int
    ) -> None:
        """One request answered: ``latency`` seconds, body bytes ``received`` and ``sent``."""
        route = self._only
        if route < 0:
            route = self.route_of(path)
        self.cells[
            route * _CELLS + _METHOD_AT.get(method, _OTHER_AT) + _CLASS_AT[status]
            + bisect_left(LATENCY_BUCKETS, latency)
        ] += 1  # fmt: skip
        self.latency_sums[route] += latency
        if received:
            self.bytes_in += received
        self.bytes_out += sent

    def server_answered(self, status: int) -> None:
        """An error the server wrote itself, no request head to go by (route ``UNROUTED``):
        answered at once, the first latency bucket."""
        self.cells[self.unrouted() * _CELLS + _OTHER_AT + _CLASS_AT[status]] += 1

    def totals(self) -> Totals:
        """The counts as ``Totals`` (every route known, even at zero); gauges: ``websockets``."""
        totals = Totals(
            websocket_connections=self.websockets, bytes_in=self.bytes_in, bytes_out=self.bytes_out
        )
        cells = self.cells
        for index, name in enumerate(self.names):
            counts: dict[tuple[str, str], int] = {}
            buckets = [0] * _BUCKETS
            at = index * _CELLS
            for method in METHODS:
                for cls in STATUS_CLASSES:
                    row = cells[at : at + _BUCKETS]
                    at += _BUCKETS
                    if any(row):
                        counts[method, cls] = sum(row)
                        buckets = [a + b for a, b in zip(buckets, row, strict=True)]
            totals.routes[name] = RouteTotals(counts, self.latency_sums[index], buckets)
        return totals
