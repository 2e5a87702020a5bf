"""GET /status, /status/series and /metrics, over a FakeBackend whose figures the test sets.

/metrics is read back with prometheus_client's own parser. The sampler's
rates are checked on a Sampler driven by a hand-moved clock.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from support import wait_until
from support.adminfake import TOKEN, FakeBackend, assert_no_token, sample_totals, serve_admin

import qactuar
from qactuar.admin.backend import ProcessInfo
from qactuar.admin.figures import LATENCY_BUCKETS, quantile
from qactuar.admin.status import Sampler
from qactuar.config import Config

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        assert_no_token(record.getMessage())


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def test_status_shows_model_processes_totals_and_system() -> None:
    config = Config()
    config.update({"ADMIN_TOKEN": TOKEN}, "test")
    backend = FakeBackend(config)
    gone = dead_pid()
    backend.procs.append(ProcessInfo(gone, "worker", "serving", backend.started))
    with serve_admin(backend) as srv:
        answer = httpx.get(srv.url + "/status", headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert_no_token(answer.text)
    status = answer.json()
    assert (status["model"], status["version"], status["pid"]) == (
        "async", qactuar.__version__, os.getpid())
    assert 10.0 <= status["uptime"] < 3600
    assert status["config"]["ADMIN_TOKEN"] == "********"
    assert status["counters"] == {"workers": 2, "restarts": 1, "recycles": 3}
    [proc] = status["processes"]  # the vanished pid is skipped
    assert (proc["pid"], proc["role"], proc["state"], proc["requests"]) == (
        os.getpid(), "process", "serving", 49)
    assert proc["rss"] == pytest.approx(psutil.Process().memory_info().rss, rel=0.5)
    assert proc["cpu_percent"] >= 0.0 and proc["age"] >= 5.0
    totals = status["totals"]
    whole = sample_totals().latency().buckets
    assert totals["requests"] == 50
    assert totals["in_flight"] == 3
    assert totals["connections"] == {"http": 5, "websocket": 2}
    assert totals["status_classes"] == {"1xx": 0, "2xx": 47, "3xx": 0, "4xx": 2, "5xx": 1}
    assert totals["bytes"] == {"in": 1234, "out": 56789}
    assert totals["latency"] == {q: pytest.approx(quantile(whole, v))
                                 for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    blog = sample_totals().routes["/blog"].buckets
    assert totals["routes"]["/blog"] == {"requests": 43,
                                         "p50": pytest.approx(quantile(blog, 0.5)),
                                         "p99": pytest.approx(quantile(blog, 0.99))}
    assert totals["routes"]["/api/v2"]["requests"] == 7
    assert set(totals["requests_per_second"]) == {"1m", "5m", "15m"}
    system = status["system"]
    assert system["cpus"] == os.cpu_count()
    assert len(system["load_average"]) == 3
    assert system["memory"]["total"] == psutil.virtual_memory().total
    assert system["open_fds"] >= 3


def test_rates_over_1_5_15_minutes_from_a_bounded_ring() -> None:
    backend = FakeBackend()
    now = [100.0]
    sampler = Sampler(backend, clock=lambda: now[0], wall=lambda: 1e9 + now[0])
    routes = backend.figures.routes
    for second in range(1200):  # 20 minutes: 2 requests a second, then 10 for the last minute
        now[0] = 100.0 + second
        routes["/blog"].requests[("GET", "2xx")] += 10 if second >= 1140 else 2
        routes["/blog"].buckets[LATENCY_BUCKETS.index(0.001)] += 1
        sampler.record(backend.totals(), 1, 1000)
    assert len(sampler.history) == Sampler.HISTORY
    assert len(sampler.series) == Sampler.SERIES
    requests = backend.totals().requests
    # a rate is the mean over the window: 60 s at 10/s; 240 s at 2 and 60 at 10; ...
    assert sampler.rates(requests) == {"1m": 10.0, "5m": 3.6, "15m": 2.533}
    last = sampler.series[-1]
    assert (last["rps"], last["processes"], last["rss"]) == (10.0, 1, 1000)
    assert last["classes"] == {"1xx": 0.0, "2xx": 10.0, "3xx": 0.0, "4xx": 0.0, "5xx": 0.0}
    # one request a second, all in the (0.0005, 0.001] bucket
    assert last["p50"] == pytest.approx(0.00075)
    assert last["t"] == 1e9 + 1299.0


def test_rates_of_a_young_server_are_over_its_life() -> None:
    backend = FakeBackend()
    now = [0.0]
    sampler = Sampler(backend, clock=lambda: now[0])
    sampler.record(backend.totals(), 1, 0)
    assert sampler.rates(backend.totals().requests) == {"1m": 0.0, "5m": 0.0, "15m": 0.0}
    now[0] = 4.0
    backend.figures.routes["/api/v2"].requests[("GET", "2xx")] += 20
    assert sampler.rates(backend.totals().requests) == {"1m": 5.0, "5m": 5.0, "15m": 5.0}


def test_series_fills_about_once_a_second_while_served() -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        sampler = srv.app.sampler  # type: ignore[attr-defined]
        # no request samples lazily here: the lifespan's task fills the series
        wait_until(lambda: len(sampler.series) >= 1, what="a first point")
        backend.figures.routes["/blog"].requests[("GET", "2xx")] += 100
        wait_until(lambda: any(p["rps"] > 0 for p in sampler.series),
                   what="a point with the new requests")
        answer = httpx.get(srv.url + "/status/series", headers=AUTH)
        assert answer.status_code == 200
        body = answer.json()
        assert body["interval"] == 1.0
        first = body["points"][0]
        assert set(first) == {"t", "rps", "p50", "p99", "classes", "processes", "rss"}
        assert first["processes"] == 1 and first["rss"] is None  # nobody looked: not measured
        # GET /status/series was a look: psutil is read from now on
        wait_until(lambda: any(p["rss"] for p in sampler.series), what="a point with the RSS")
        busy = [p for p in body["points"] if p["rps"] > 0]
        assert busy and busy[0]["classes"]["2xx"] == busy[0]["rps"]


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def values(family: Any, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples
            if s.name == family.name + suffix}


def test_metrics_parse_and_agree_with_the_backend() -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        answer = httpx.get(srv.url + "/metrics", headers=AUTH)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
        found = families(answer.text)
        assert values(found["qactuar_requests"], "_total") == {
            (("method", "GET"), ("route", "/blog"), ("status_class", "2xx")): 40,
            (("method", "POST"), ("route", "/blog"), ("status_class", "4xx")): 2,
            (("method", "GET"), ("route", "/blog"), ("status_class", "5xx")): 1,
            (("method", "GET"), ("route", "/api/v2"), ("status_class", "2xx")): 7,
        }
        histogram = found["qactuar_request_duration_seconds"]
        assert histogram.type == "histogram"
        blog = [(s.labels["le"], s.value) for s in histogram.samples
                if s.name.endswith("_bucket") and s.labels["route"] == "/blog"]
        assert len(blog) == len(LATENCY_BUCKETS) and blog[-1] == ("+Inf", 43)
        assert dict(blog)["0.0005"] == 0 and dict(blog)["0.001"] == 30
        assert dict(blog)["0.01"] == 42 and dict(blog)["1.0"] == 43
        assert values(histogram, "_count")[(("route", "/blog"),)] == 43
        assert values(histogram, "_sum")[(("route", "/blog"),)] == 1.25
        assert values(found["qactuar_requests_in_flight"]) == {(): 3}
        assert values(found["qactuar_connections"]) == {(("kind", "http"),): 5,
                                                        (("kind", "websocket"),): 2}
        assert values(found["qactuar_bytes_received"], "_total") == {(): 1234}
        assert values(found["qactuar_bytes_sent"], "_total") == {(): 56789}
        assert values(found["qactuar_processes"]) == {(("role", "process"),): 1}
        assert values(found["qactuar_process_restarts"], "_total") == {(): 1}
        assert values(found["qactuar_process_recycles"], "_total") == {(): 3}
        me = (("pid", str(os.getpid())), ("role", "process"))
        assert values(found["qactuar_process_cpu_seconds"], "_total")[me] > 0
        assert values(found["qactuar_process_resident_memory_bytes"])[me] > 1_000_000

        backend.figures.routes["/blog"].requests[("GET", "2xx")] += 5
        again = families(httpx.get(srv.url + "/metrics", headers=AUTH).text)
        key = (("method", "GET"), ("route", "/blog"), ("status_class", "2xx"))
        assert values(again["qactuar_requests"], "_total")[key] == 45


def test_a_backend_failure_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeBackend):
        def totals(self) -> Any:
            raise RuntimeError("figures unreadable")

    with serve_admin(Broken()) as srv:
        answer = httpx.get(srv.url + "/status", headers=AUTH)
        assert (answer.status_code, answer.json()) == (
            500, {"error": "the admin socket failed: see the server's log"})
        assert httpx.get(srv.url + "/config", headers=AUTH).status_code == 200
    [record] = [r for r in caplog.records if r.getMessage() == "admin: GET /status failed"]
    assert record.name == "qt_server" and record.exc_info is not None
    assert "figures unreadable" in str(record.exc_info[1])


def test_psutil_is_read_only_while_someone_looks() -> None:
    """The figures every second; psutil only within WATCHED seconds of a look
    (a /status, /status/series or /metrics request): else the point's rss is None."""
    import asyncio

    backend = FakeBackend()
    now = [100.0]
    sampler = Sampler(backend, clock=lambda: now[0], wall=lambda: 1e9 + now[0])
    looks: list[list[int]] = []

    def measure(pids: list[int]) -> dict[int, Any]:
        looks.append(pids)
        return {pid: type("M", (), {"rss": 1000 + len(looks)})() for pid in pids}

    sampler.watch.measure = measure  # type: ignore[method-assign]

    async def second() -> None:
        now[0] += 1.0
        await sampler.sample()

    async def run() -> None:
        for _ in range(6):
            await second()  # nobody looks: no psutil
        assert looks == [] and sampler.series[-1]["rss"] is None
        sampler.looked()
        for _ in range(int(Sampler.WATCHED)):
            await second()
        assert len(looks) == int(Sampler.WATCHED)
        assert sampler.series[-1]["rss"] == 1000 + len(looks)
        await second()  # the look is older than WATCHED
        assert len(looks) == int(Sampler.WATCHED) and sampler.series[-1]["rss"] is None
        now[0] += 1.0
        await sampler.maybe_sample()  # a /status request is a look
        assert len(looks) == 1 + int(Sampler.WATCHED)

    asyncio.run(run())
