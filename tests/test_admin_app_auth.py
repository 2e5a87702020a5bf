"""The admin app's door: the token, the failure delays, the dashboard's session, CSRF.

The app is served by qactuar's core in a thread (support.adminfake.serve_admin)
over a FakeBackend; httpx is the client. The delays' growth per address is
checked on the app itself, called with scopes from two addresses and a sleep
that records what it was asked to wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import httpx
import pytest
from support.adminfake import TOKEN, FakeBackend, assert_no_token, serve_admin

from qactuar.admin.app import admin_app
from qactuar.admin.auth import Guard

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG_LAST = TOKEN[:-1] + ("A" if TOKEN[-1] != "A" else "B")


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        assert_no_token(record.getMessage())


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "qt_server" and "admin: 401" in r.getMessage()]


@pytest.mark.parametrize("headers, why", [
    ({}, "no token"),
    ({"Authorization": "Bearer not-the-token"}, "a wrong token"),
    ({"Authorization": f"Bearer {WRONG_LAST}"}, "a wrong token"),
    ({"Authorization": f"Basic {TOKEN}"}, "not Bearer"),
    ({"Cookie": "qactuar_admin=made-up"}, "unknown or expired session"),
])
def test_without_the_token_every_answer_is_401_and_logged(
        caplog: pytest.LogCaptureFixture, headers: dict[str, str], why: str) -> None:
    with serve_admin(FakeBackend()) as srv:
        answer = httpx.get(srv.url + "/status", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["content-type"] == "application/json"
        assert "token" in answer.json()["error"]
        [line] = refusals(caplog)
        assert "GET /status from 127.0.0.1:" in line and why in line
        assert httpx.get(srv.url + "/status", headers=AUTH).status_code == 200


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/assets/app.js"), ("GET", "/metrics"), ("GET", "/status/series"),
    ("GET", "/config"), ("PATCH", "/config"), ("POST", "/config/save"), ("GET", "/apps"),
    ("POST", "/apps"), ("DELETE", "/apps/blog"), ("POST", "/reload"), ("POST", "/logout"),
    ("GET", "/no-such-thing"),
])
def test_every_route_needs_the_token(method: str, path: str) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        answer = httpx.request(method, srv.url + path, json={"ACCESS_LOG": False},
                               headers={"Authorization": f"Bearer {WRONG_LAST}"})
        assert answer.status_code == 401
    assert backend.calls == []


def test_unknown_path_404_and_wrong_method_405_with_allow() -> None:
    with serve_admin(FakeBackend()) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        missing = c.get("/nope")
        assert missing.status_code == 404 and "/nope" in missing.json()["error"]
        wrong = c.delete("/status")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, HEAD"
        assert c.put("/config").headers["allow"] == "GET, PATCH, HEAD"
        assert c.get("/login").headers["allow"] == "POST"
        assert c.post("/").status_code == 405
        # the dashboard's stand-in, until one is passed
        assert c.get("/").status_code == 404


def test_the_dashboard_is_delegated_once_signed_in() -> None:
    seen: list[str] = []

    async def dashboard(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<p>dashboard</p>"})

    with serve_admin(FakeBackend(), dashboard=dashboard) as srv:
        assert httpx.get(srv.url + "/assets/x.js").status_code == 401
        page = httpx.get(srv.url + "/", headers=AUTH)
        assert (page.status_code, page.text) == (200, "<p>dashboard</p>")
        assert httpx.get(srv.url + "/assets/x.js", headers=AUTH).status_code == 200
    assert seen == ["/", "/assets/x.js"]


def test_a_browser_without_a_session_gets_the_signin_form() -> None:
    with serve_admin(FakeBackend()) as srv:
        page = httpx.get(srv.url + "/", headers={"Accept": "text/html,*/*"})
        assert page.status_code == 401
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<form method="post" action="/login">' in page.text
        assert_no_token(page.text)


def test_repeated_failures_wait_longer_per_address_and_a_success_resets() -> None:
    waited: list[tuple[str, float]] = []
    current = [""]

    async def sleep(delay: float) -> None:
        waited.append((current[0], delay))

    guard = Guard(TOKEN, delay_base=0.5, delay_cap=4.0, sleep=sleep)
    app = admin_app(FakeBackend(), TOKEN, guard=guard)

    async def call(address: str, token: str) -> int:
        current[0] = address
        scope = {"type": "http", "method": "GET", "path": "/config", "scheme": "http",
                 "client": (address, 40000), "server": ("127.0.0.1", 1986),
                 "headers": [(b"host", b"localhost:1986"),
                             (b"authorization", f"Bearer {token}".encode())]}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])

    async def scenario() -> list[int]:
        statuses = [await call("10.0.0.1", "wrong") for _ in range(6)]
        statuses.append(await call("10.0.0.2", "wrong"))
        statuses.append(await call("10.0.0.1", TOKEN))
        statuses.append(await call("10.0.0.1", "wrong"))
        statuses.append(await call("10.0.0.1", "wrong"))
        return statuses

    statuses = asyncio.run(scenario())
    assert statuses == [401] * 6 + [401, 200, 401, 401]
    # the first failure is answered at once; then 0.5, 1, 2, 4, capped at 4; the other
    # address is not slowed; after a success, 10.0.0.1 starts over
    assert waited == [("10.0.0.1", 0.5), ("10.0.0.1", 1.0), ("10.0.0.1", 2.0),
                      ("10.0.0.1", 4.0), ("10.0.0.1", 4.0), ("10.0.0.1", 0.5)]


def test_a_delayed_401_holds_neither_the_loop_nor_other_requests() -> None:
    waiting, release = threading.Event(), threading.Event()
    delays: list[float] = []

    async def sleep(delay: float) -> None:  # waits, off the loop's hands, until released
        delays.append(delay)
        waiting.set()
        await asyncio.to_thread(release.wait, 30)

    guard = Guard(TOKEN, delay_base=3.0, sleep=sleep)
    with serve_admin(FakeBackend(), guard=guard) as srv:
        wrong = {"Authorization": "Bearer wrong"}
        assert httpx.get(srv.url + "/status", headers=wrong).status_code == 401  # at once
        outcome: list[int] = []
        thread = threading.Thread(target=lambda: outcome.append(
            httpx.get(srv.url + "/status", headers=wrong, timeout=30).status_code))
        thread.start()
        try:
            assert waiting.wait(15), "the second failure was not delayed"
            assert httpx.get(srv.url + "/config", headers=AUTH).status_code == 200
            assert outcome == [], "the delayed 401 was answered before its delay ended"
        finally:
            release.set()
            thread.join(30)
        assert outcome == [401]
        assert delays == [3.0]


def test_the_failure_table_is_bounded_and_forgets() -> None:
    now = [0.0]
    guard = Guard(TOKEN, delay_base=1.0, max_addresses=2, clock=lambda: now[0])
    assert [guard.failed("a"), guard.failed("a"), guard.failed("b")] == [0.0, 1.0, 0.0]
    guard.failed("c")  # a third address: the oldest ("a") is forgotten
    assert guard.failed("a") == 0.0
    now[0] += 901.0  # a quarter of an hour without a failure: "a" starts over
    assert guard.failed("a") == 0.0


def test_head_and_websocket() -> None:
    with serve_admin(FakeBackend()) as srv:
        head = httpx.head(srv.url + "/status", headers=AUTH)
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) > 100
        with srv.connect() as sock:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 403 ")
