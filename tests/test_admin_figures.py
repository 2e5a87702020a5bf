"""The admin figures' recorder and their shared-memory blocks (issue 12), unit by unit.

The models' end-to-end figures are in test_admin_figures_models.py.
"""

from __future__ import annotations

import math
import mmap
import os
import struct

import pytest

from qactuar import Config
from qactuar.admin.figures import (
    LATENCY_BUCKETS,
    UNROUTED,
    Recorder,
    RouteTotals,
    Totals,
    quantile,
)
from qactuar.admin.figures_shm import FiguresBlock, decode, encode
from qactuar.routing import Router
from qactuar.server.server import ServerState


async def _app(scope: object, receive: object, send: object) -> None:
    pass


def _requests(recorder: Recorder) -> dict[str, dict[tuple[str, str], int]]:
    return {name: r.requests for name, r in recorder.totals().routes.items() if r.requests}


def test_routes_match_whole_segments_longest_first_and_the_rest_is_unrouted() -> None:
    recorder = Recorder(["/api", "/api/v2", "/blog/"])
    for path in ("/api", "/api/x", "/api/v2/y", "/api/v2", "/apix", "/blog", "/"):
        recorder.record(path, "GET", 200, 0.001, 0, 0)
    assert _requests(recorder) == {
        "/api": {("GET", "2xx"): 2},
        "/api/v2": {("GET", "2xx"): 2},
        "/blog": {("GET", "2xx"): 1},
        UNROUTED: {("GET", "2xx"): 2},
    }


def test_one_app_is_route_slash_whatever_the_path() -> None:
    recorder = Recorder()
    recorder.record("/anything/at/all", "POST", 201, 0.002, 7, 9)
    recorder.record("*", "OPTIONS", 204, 0.002, 0, 0)
    assert _requests(recorder) == {"/": {("POST", "2xx"): 1, ("OPTIONS", "2xx"): 1}}
    assert (recorder.bytes_in, recorder.bytes_out) == (7, 9)


def test_methods_and_status_classes() -> None:
    recorder = Recorder()
    for method, status in (("GET", 101), ("HEAD", 304), ("BREW", 418), ("PATCH", 503),
                           ("DELETE", 200), ("PUT", 500)):
        recorder.record("/", method, status, 0.0, 0, 0)
    totals = recorder.totals()
    assert totals.routes["/"].requests == {
        ("GET", "1xx"): 1, ("HEAD", "3xx"): 1, ("OTHER", "4xx"): 1, ("PATCH", "5xx"): 1,
        ("DELETE", "2xx"): 1, ("PUT", "5xx"): 1,
    }
    assert totals.by_class() == {"1xx": 1, "2xx": 1, "3xx": 1, "4xx": 1, "5xx": 2}


def test_latency_buckets_are_upper_bounds_not_cumulative() -> None:
    recorder = Recorder()
    latencies = (0.0, 0.0001, 0.00010001, 0.001, 0.0011, 9.9, 10.0, 3600.0)
    for latency in latencies:
        recorder.record("/", "GET", 200, latency, 0, 0)
    route = recorder.totals().routes["/"]
    at = {bound: n for bound, n in zip(LATENCY_BUCKETS, route.buckets, strict=True) if n}
    assert at == {0.0001: 2, 0.00025: 1, 0.001: 1, 0.0025: 1, 10.0: 2, math.inf: 1}
    assert sum(route.buckets) == route.count == 8
    assert route.latency_sum == pytest.approx(sum(latencies))
    assert quantile(route.buckets, 1.0) == 10.0  # the +Inf bucket: its lower bound


def test_server_answered_errors_count_unrouted_in_the_first_bucket() -> None:
    recorder = Recorder(["/api"])
    recorder.server_answered(400)
    recorder.server_answered(502)
    route = recorder.totals().routes[UNROUTED]
    assert route.requests == {("OTHER", "4xx"): 1, ("OTHER", "5xx"): 1}
    assert route.buckets[0] == 2 and sum(route.buckets) == 2


def test_routes_changed_keep_their_figures() -> None:
    recorder = Recorder(["/api"])
    recorder.record("/api/x", "GET", 200, 0.01, 3, 4)
    recorder.set_routes(["/blog"])  # /api unmounted, /blog mounted
    recorder.record("/blog/x", "GET", 200, 0.01, 0, 0)
    recorder.record("/api/x", "GET", 200, 0.01, 0, 0)  # no longer routed
    assert _requests(recorder) == {
        "/api": {("GET", "2xx"): 1}, "/blog": {("GET", "2xx"): 1}, UNROUTED: {("GET", "2xx"): 1},
    }
    assert set(recorder.totals().routes) == {"/api", "/blog", UNROUTED}


def test_server_state_records_only_with_admin_enabled_and_learns_the_router() -> None:
    assert ServerState(_app, Config()).figures is None
    config = Config()
    config.update({"ADMIN_ENABLED": True}, "test")
    assert ServerState(_app, config).figures is not None
    router = Router({"/api": _app, "/": _app})
    state = ServerState(router, config)
    assert state.figures is not None
    assert set(state.figures.totals().routes) == {"/api", "/"}
    totals = state.totals()
    assert (totals.requests, totals.in_flight, totals.http_connections) == (0, 0, 0)


def _sample() -> Totals:
    totals = Totals(in_flight=2, http_connections=3, websocket_connections=1, bytes_in=10,
                    bytes_out=20)
    totals.routes["/api"] = RouteTotals({("GET", "2xx"): 5, ("POST", "5xx"): 1}, 0.5,
                                        [1] * len(LATENCY_BUCKETS))
    totals.routes[UNROUTED] = RouteTotals({("OTHER", "4xx"): 1}, 0.0,
                                          [1] + [0] * (len(LATENCY_BUCKETS) - 1))
    return totals


def test_encode_decode_round_trip() -> None:
    assert decode(encode(_sample())) == _sample()
    with pytest.raises(ValueError, match="unreadable figures"):
        decode(b"\x00not marshal")


def test_a_block_published_in_a_child_is_read_by_its_parent() -> None:
    mem = mmap.mmap(-1, 8192)
    block = FiguresBlock(mem, 4096, 4096)
    assert block.read() is None  # nothing published yet
    pid = os.fork()
    if pid == 0:  # the child: publish and go
        code = 0 if FiguresBlock(mem, 4096, 4096).publish(_sample()) else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert block.read() == _sample()


def test_a_write_under_way_is_never_read_and_one_too_big_is_refused() -> None:
    mem = mmap.mmap(-1, 4096)
    block = FiguresBlock(mem, 0, 4096)
    assert block.publish(_sample())
    seq = struct.unpack_from("=Q", mem, 0)[0]
    struct.pack_into("=Q", mem, 0, seq + 1)  # odd: a writer stopped mid-write
    assert block.read() is None
    struct.pack_into("=Q", mem, 0, seq + 2)
    assert block.read() == _sample()
    big = Totals()
    for i in range(100):
        big.routes[f"/route-{i}"] = RouteTotals({("GET", "2xx"): i}, float(i))
    assert not block.publish(big)
    assert block.read() == _sample()  # what was published whole stays


def test_the_master_keeps_a_workers_last_whole_figures_while_it_writes() -> None:
    # a read meeting a write under way (or cut short by SIGKILL) gave nothing:
    # /metrics dropped that worker's counts for a moment, which Prometheus
    # takes for a counter reset, and a worker killed mid-write lost them all
    # (found by review)
    from qactuar.models.arbiter import Arbiter
    from qactuar.models.pool import WorkerRecord
    from qactuar.models.slot import WorkerSlot

    slot = WorkerSlot(figures=True)
    assert slot.figures is not None
    worker = WorkerRecord(pid=1, slot=slot, generation=1, max_requests=0, started=0.0)
    arbiter = Arbiter.__new__(Arbiter)  # only its figures' state
    arbiter.retired = Totals()
    arbiter.workers = {1: worker}
    assert slot.figures.publish(_sample())
    assert arbiter.totals() == _sample()
    seq = struct.unpack_from("=Q", slot.mem, slot.SIZE)[0]
    struct.pack_into("=Q", slot.mem, slot.SIZE, seq + 1)  # odd: a write under way
    assert arbiter.totals() == _sample()
    arbiter.retire_figures(worker)  # killed mid-write: its last whole figures are kept
    retired = _sample()
    retired.in_flight = retired.http_connections = retired.websocket_connections = 0
    assert arbiter.retired == retired
