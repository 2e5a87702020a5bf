"""The admin figures in each process model, end to end (issue 12).

qactuar runs as a process with ADMIN_ENABLED on, launched by
``tests/apps/figures_probe.py``, which writes the model object's
``totals()`` and ``admin_counters()`` as JSON on SIGPWR (the admin socket
itself is another part of the issue). Each test sends a known set of
requests over real sockets and checks the figures exactly: counts by route,
method and status class (the server's own 400 and the router's 404
included), latency buckets that add up to the counts, bytes in and out,
what is in flight and open. In ``prefork`` a worker publishes its figures
once per heartbeat, so the tests wait for the figures to reach the count
sent (bounded), then check them whole.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import RawClient, Spawned, alive, children_of, wait_until
from tlscerts import Certs, tls_socket
from wsraw import RawWebSocket

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGPWR"), reason="Linux signals")

APPS = json.dumps({"/api": "figures_apps:api", "/blog": "figures_apps:blog"})
MODELS = ("async", "fork", "prefork")

#: what ``send_known_mix`` sends, as the figures must count it
MIX_ROUTES = {
    "/api": {"GET 2xx": 3, "POST 2xx": 1, "GET 5xx": 1, "DELETE 2xx": 1},
    "/blog": {"GET 4xx": 1, "PUT 2xx": 1},
    "": {"GET 4xx": 1, "OTHER 4xx": 1},  # the router's 404; a malformed request's 400
}
MIX_COUNT = 10
MIX_IN = 1000 + 10
#: 3 x "hello", the echoed 1000 and 10 bytes, "Not Found\n", "hello"
MIX_OUT = 3 * 5 + 1000 + 10 + 10 + 5


class Figures:
    """The figures of a running server, read through the probe."""

    def __init__(self, spawned: Spawned, folder: str) -> None:
        self.spawned = spawned
        self.path = os.path.join(folder, "figures.json")

    def read(self) -> dict[str, Any]:
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.spawned.signal(signal.SIGPWR)

        def written() -> dict[str, Any] | None:
            if not os.path.exists(self.path):
                return None
            with open(self.path, encoding="utf-8") as fh:
                report: dict[str, Any] = json.load(fh)
            return report

        return wait_until(written, 10, what="the probe's figures.json")

    def wait(self, check: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = 15) -> dict[str, Any]:
        """The figures once ``check`` holds (a prefork worker publishes once a beat)."""
        last: list[dict[str, Any]] = []

        def holds() -> dict[str, Any] | None:
            figures = self.read()
            last[:] = [figures]
            return figures if check(figures) else None

        try:
            return wait_until(holds, timeout, what=what, interval=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last figures: {last}") from None


def count(figures: dict[str, Any]) -> int:
    return sum(sum(r["requests"].values()) for r in figures["routes"].values())


def by_route(figures: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {name: r["requests"] for name, r in figures["routes"].items() if r["requests"]}


@pytest.fixture
def start(spawn_qactuar: Callable[..., Spawned], tmp_path: Any) -> Iterator[
        Callable[..., tuple[Spawned, Figures]]]:
    def start(model: str, *args: str) -> tuple[Spawned, Figures]:
        env = {"QACTUAR_ADMIN_ENABLED": "true", "QACTUAR_ADMIN_PORT": "0",
               "QACTUAR_ADMIN_TOKEN": "figures-test-token", "QACTUAR_APPS": APPS,
               "FIGURES_DIR": str(tmp_path)}
        spawned = spawn_qactuar("--model", model, "--no-access-log", *args, env=env,
                                launcher="figures_probe")
        if model == "prefork":
            spawned.wait_for_log("serving", count=int(_arg(args, "--workers", "1")))
        return spawned, Figures(spawned, str(tmp_path))

    yield start


def _arg(args: tuple[str, ...], name: str, default: str) -> str:
    return args[args.index(name) + 1] if name in args else default


def _serving_worker(spawned: Spawned) -> int | None:
    """A worker serving and not retiring, once there are just two (else None)."""
    output, pids = spawned.output(), children_of(spawned.proc.pid)
    retiring = {int(p) for p in re.findall(r"Worker (\d+) served \d+ requests \(MAX_REQ", output)}
    serving = {int(p) for p in re.findall(r"Worker (\d+) serving", output)}
    if len(pids) == 2 and not retiring & set(pids) and set(pids) <= serving:
        return pids[0]
    return None


def send_known_mix(port: int, connect: Callable[[], RawClient] | None = None) -> None:
    """MIX_ROUTES' requests, each answered as expected (``connect``: over TLS)."""
    connect = connect or (lambda: RawClient(port))
    with connect() as client:
        for _ in range(3):
            assert client.request("/api/hello").body == b"hello"
        assert client.request("/api/echo", "POST", b"x" * 1000).body == b"x" * 1000
        assert client.request("/api/status/500").status == 500
        assert client.request("/api/hello", "DELETE").body == b"hello"
        assert client.request("/blog/status/404").status == 404
        assert client.request("/blog/echo", "PUT", b"0123456789").body == b"0123456789"
        missing = client.request("/elsewhere")
        assert (missing.status, missing.body) == (404, b"Not Found\n")
    with connect() as client:
        client.send(b"GET /api/hello HTTP/1.1\r\nHost: test\r\nno colon here\r\n\r\n")
        assert client.response().status == 400
        assert client.closed_by_server()


def assert_mix(figures: dict[str, Any], extra: int = 0) -> None:
    assert by_route(figures) == MIX_ROUTES
    for name, route in figures["routes"].items():
        assert sum(route["buckets"]) == sum(route["requests"].values()), name
    assert (figures["bytes_in"], figures["bytes_out"]) == (MIX_IN, MIX_OUT)


@pytest.mark.parametrize("model", MODELS)
def test_counts_routes_status_classes_and_bytes_exactly(
        start: Callable[..., tuple[Spawned, Figures]], model: str) -> None:
    spawned, figures = start(model)
    empty = figures.wait(lambda f: set(f["routes"]) >= {"/api", "/blog"}, "the routes known")
    assert count(empty) == 0
    send_known_mix(spawned.port)
    # (fork: a request is in flight until its child has exited, a little after its answer)
    seen = figures.wait(lambda f: count(f) >= MIX_COUNT and f["in_flight"] == 0,
                        f"{MIX_COUNT} requests counted, none in flight")
    assert_mix(seen)


def test_fork_over_tls_counts_each_relayed_request_once(
        start: Callable[..., tuple[Spawned, Figures]], tmp_path: Any) -> None:
    # over TLS the parent runs the cycle (its app relayed to a child): the
    # parent counts, the child hands over nothing
    certs = Certs(tmp_path)
    spawned, figures = start("fork", "--ssl-cert-path", certs.server_pem)
    send_known_mix(spawned.port, lambda: RawClient.over(tls_socket(certs, spawned.port)))
    seen = figures.wait(lambda f: count(f) >= MIX_COUNT and f["counters"]["children"] == 0,
                        f"{MIX_COUNT} requests counted")
    assert_mix(seen)
    assert seen["counters"]["forked"] == MIX_COUNT - 1  # the 400 needed no child


@pytest.mark.parametrize("model", MODELS)
def test_in_flight_connections_and_websockets(
        start: Callable[..., tuple[Spawned, Figures]], model: str, tmp_path: Any) -> None:
    # (no timeout of the server's may end a connection or the held request meanwhile)
    spawned, figures = start(model, "--keep-alive-timeout", "300", "--request-timeout", "300")
    port = spawned.port
    with RawClient(port) as idle_one, RawClient(port) as idle_two:
        assert idle_one.request("/api/hello").status == 200
        assert idle_two.request("/blog/hello").status == 200
        figures.wait(lambda f: f["http_connections"] == 2 and count(f) == 2,
                     "two idle keep-alive connections")
        release = os.path.join(tmp_path, "release")
        with RawClient(port) as held:
            held.send(b"GET /api/hold HTTP/1.1\r\nHost: test\r\n\r\n")
            try:
                wait_until(lambda: any(n.startswith("held-") for n in os.listdir(tmp_path)),
                           15, what="the request in flight")
                now = figures.wait(lambda f: f["in_flight"] == 1, "one request in flight")
                assert (now["http_connections"], now["websocket_connections"]) == (3, 0)
                with RawWebSocket.open(port, "/api/socket"):
                    now = figures.wait(lambda f: f["websocket_connections"] == 1,
                                       "one open WebSocket")
                    assert (now["in_flight"], now["http_connections"]) == (1, 3)
                    assert now["routes"]["/api"]["requests"] == {"GET 2xx": 1, "GET 1xx": 1}
            finally:
                open(release, "w").close()  # (a failure above must not hold the stop)
            assert held.response().body == b"released"
        after = figures.wait(
            lambda f: f["websocket_connections"] == 0 and f["in_flight"] == 0
            and count(f) == 4 and f["http_connections"] == 2,
            "the WebSocket closed and the held request answered")
    assert by_route(after) == {"/api": {"GET 2xx": 2, "GET 1xx": 1}, "/blog": {"GET 2xx": 1}}
    assert spawned.proc.poll() is None


@pytest.mark.parametrize("model", MODELS)
def test_pipelined_requests_and_an_apps_own_status_code_are_counted(
        start: Callable[..., tuple[Spawned, Figures]], model: str) -> None:
    # a fork child serves the requests pipelined behind its own (found by review:
    # only the first was counted); a status above 599 (with a reason phrase)
    # is a 5xx for the figures, and once crashed the recorder, which left the
    # connection hanging
    spawned, figures = start(model)
    with RawClient(spawned.port) as client:
        client.send(b"GET /api/hello HTTP/1.1\r\nHost: test\r\n\r\n" * 3)
        for _ in range(3):
            assert client.response().body == b"hello"
        assert client.request("/api/status/682").status == 682
        assert client.request("/blog/hello").body == b"hello"  # the connection goes on
    seen = figures.wait(lambda f: count(f) >= 5, "five requests counted")
    assert by_route(seen) == {"/api": {"GET 2xx": 3, "GET 5xx": 1}, "/blog": {"GET 2xx": 1}}


def test_fork_totals_across_many_children(
        start: Callable[..., tuple[Spawned, Figures]]) -> None:
    spawned, figures = start("fork")
    for i in range(40):
        with RawClient(spawned.port) as client:  # a child each
            assert client.request(f"/api/echo?{i}", "POST", b"%03d" % i).body == b"%03d" % i
    seen = figures.wait(lambda f: count(f) >= 40 and f["counters"]["children"] == 0,
                        "40 children reaped")
    assert by_route(seen) == {"/api": {"POST 2xx": 40}}
    assert (seen["bytes_in"], seen["bytes_out"]) == (120, 120)
    assert seen["counters"]["forked"] == 40
    assert sum(seen["routes"]["/api"]["buckets"]) == 40


def test_prefork_totals_survive_recycles_and_a_killed_worker(
        start: Callable[..., tuple[Spawned, Figures]]) -> None:
    spawned, figures = start("prefork", "--workers", "2", "--max-requests", "5")
    history: list[int] = []

    def counted(expected: int) -> Callable[[dict[str, Any]], bool]:
        def check(f: dict[str, Any]) -> bool:
            history.append(count(f))
            return count(f) == expected
        return check

    sent = 0
    for _ in range(20):  # until two workers were recycled (a retiring one serves on a while)
        for _ in range(6):
            with RawClient(spawned.port) as client:
                assert client.request("/api/hello").status == 200
            sent += 1
        seen = figures.wait(counted(sent), f"{sent} requests counted")
        if seen["counters"]["recycles"] >= 2:
            break
    assert seen["counters"]["recycles"] >= 2, seen["counters"]
    assert seen["counters"]["restarts"] == 0
    victim = wait_until(lambda: _serving_worker(spawned), 15,
                        what="two workers serving, none retiring")
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not alive(victim) and len(children_of(spawned.proc.pid)) == 2
               and victim not in children_of(spawned.proc.pid), 15,
               what="the killed worker replaced")
    seen = figures.wait(lambda f: f["counters"]["restarts"] == 1, "the restart counted")
    history.append(count(seen))
    for _ in range(3):
        with RawClient(spawned.port) as client:
            assert client.request("/blog/hello").status == 200
        sent += 1
    seen = figures.wait(counted(sent), f"{sent} requests counted")
    assert history == sorted(history), f"the count went backwards: {history}"
    assert by_route(seen) == {"/api": {"GET 2xx": sent - 3}, "/blog": {"GET 2xx": 3}}
    assert seen["bytes_out"] == 5 * sent
    assert sum(sum(r["buckets"]) for r in seen["routes"].values()) == sent
    assert seen["counters"]["workers"] == 2
