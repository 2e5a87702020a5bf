"""The admin app's door: the token, the failure delays, the dashboard's session, CSRF.

The app is served by qactuar's core in a thread (support.adminfake.serve_admin)
over a FakeBackend; httpx is the client. The delays' growth per address is
checked on the app itself, called with scopes from two addresses and a clock
the test moves.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from support.adminfake import TOKEN, FakeBackend, assert_no_token, serve_admin

from qactuar.admin.app import admin_app
from qactuar.admin.auth import Guard
from qactuar.admin.dashboard import CONTENT_SECURITY_POLICY, dashboard_app

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
    ({"Cookie": "qactuar_admin_PORT=made-up"}, "unknown or expired session"),
])
def test_without_the_token_every_answer_is_401_and_logged(
        caplog: pytest.LogCaptureFixture, headers: dict[str, str], why: str) -> None:
    with serve_admin(FakeBackend()) as srv:
        headers = {k: v.replace("PORT", str(srv.port)) for k, v in headers.items()}
        answer = httpx.get(srv.url + "/status", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["content-type"] == "application/json"
        assert "token" in answer.json()["error"]
        [line] = refusals(caplog)
        assert "GET /status from 127.0.0.1:" in line and why in line
        assert httpx.get(srv.url + "/status", headers=AUTH).status_code == 200


@pytest.mark.parametrize("method, path", [
    ("POST", "/"), ("GET", "/metrics"), ("GET", "/status/series"),
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


def test_the_dashboards_files_need_no_token() -> None:
    """The page and its assets are the same files for everyone: a browser without a
    session gets the page, whose script shows the sign-in form when /status answers 401."""
    seen: list[str] = []

    async def dashboard(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<p>dashboard</p>"})

    with serve_admin(FakeBackend(), dashboard=dashboard) as srv:
        assert httpx.get(srv.url + "/assets/x.js").status_code == 200
        page = httpx.get(srv.url + "/", headers={"Accept": "text/html"})
        assert (page.status_code, page.text) == (200, "<p>dashboard</p>")
        stale = httpx.get(srv.url + "/", cookies={f"qactuar_admin_{srv.port}": "old"})
        assert (stale.status_code, stale.text) == (200, "<p>dashboard</p>")
        assert httpx.post(srv.url + "/").status_code == 401  # no file answers a POST
    assert seen == ["/assets/x.js", "/", "/"]


def test_a_browser_without_a_session_gets_the_dashboards_signin_form() -> None:
    with serve_admin(FakeBackend(), dashboard=dashboard_app) as srv:
        page = httpx.get(srv.url + "/", headers={"Accept": "text/html,*/*"})
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<form id="sign-in-form"' in page.text
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert_no_token(page.text)


def test_repeated_failures_put_the_address_in_penalty_doubling_per_address() -> None:
    now = [100.0]
    guard = Guard(TOKEN, delay_base=0.5, delay_cap=4.0, clock=lambda: now[0])
    app = admin_app(FakeBackend(), TOKEN, guard=guard)

    async def call(address: str, token: str) -> tuple[int, str | None]:
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
        headers = dict(sent[0]["headers"])
        retry = headers.get(b"retry-after")
        return int(sent[0]["status"]), retry.decode() if retry is not None else None

    async def scenario() -> list[tuple[int, str | None]]:
        seen = [await call("10.0.0.1", "wrong")]   # a typo: no penalty
        seen.append(await call("10.0.0.1", "wrong"))  # 0.5 s of penalty
        seen.append(await call("10.0.0.1", TOKEN))  # the right token: 429 all the same
        seen.append(await call("10.0.0.2", TOKEN))  # another address is not held
        now[0] += 0.5
        seen.append(await call("10.0.0.1", "wrong"))  # 1 s
        now[0] += 0.9
        seen.append(await call("10.0.0.1", "wrong"))  # still in penalty: not counted
        now[0] += 0.1
        seen.append(await call("10.0.0.1", TOKEN))  # a success does not reset it...
        seen.append(await call("10.0.0.1", "wrong"))  # ... this is failure 4: 2 s
        seen.append(await call("10.0.0.1", "wrong"))
        now[0] += 2.0
        for _ in range(3):  # 4 s, then capped at 4 s
            seen.append(await call("10.0.0.1", "wrong"))
            now[0] += 4.0
        return seen

    assert asyncio.run(scenario()) == [
        (401, None), (401, None), (429, "1"), (200, None), (401, None), (429, "1"),
        (200, None), (401, None), (429, "2"), (401, None), (401, None), (401, None)]
    assert guard.penalty_left("10.0.0.1") == 0.0
    now[0] -= 1.0
    assert guard.penalty_left("10.0.0.1") == 1.0


def test_a_request_without_any_credential_is_no_failure() -> None:
    """The dashboard's first look at /status and a favicon bring no credential: they guess
    nothing, and must not put the person about to sign in in penalty."""
    with serve_admin(FakeBackend()) as srv:
        for path in ("/status", "/favicon.ico", "/status"):
            assert httpx.get(srv.url + path).status_code == 401
        assert httpx.post(srv.url + "/login", json={"token": "wrong"}).status_code == 401
        assert httpx.post(srv.url + "/login", json={"token": TOKEN}).status_code == 200


def test_a_success_forgives_a_single_typo() -> None:
    guard = Guard(TOKEN, delay_base=1.0)
    assert guard.failed("10.0.0.1") == 0.0
    guard.succeeded("10.0.0.1")
    assert guard.failed("10.0.0.1") == 0.0  # counted from one again


def test_an_ipv6_address_counts_by_its_64() -> None:
    guard = Guard(TOKEN, delay_base=1.0)
    assert guard.failed("2001:db8:1:2::1") == 0.0
    assert guard.failed("2001:db8:1:2:ffff::9") == 1.0  # the same /64
    assert guard.penalty_left("2001:db8:1:2::abcd") > 0.5
    assert guard.penalty_left("2001:db8:1:3::1") == 0.0  # another /64


def test_in_penalty_no_credential_is_looked_at(caplog: pytest.LogCaptureFixture) -> None:
    """Guesses sent side by side: once the address is in penalty, even the right token is a
    429 with Retry-After, over a real socket, on every route, /login included."""
    guard = Guard(TOKEN, delay_base=300.0, delay_cap=300.0)
    with serve_admin(FakeBackend(), guard=guard) as srv:
        wrong = {"Authorization": "Bearer wrong"}
        assert httpx.get(srv.url + "/status", headers=wrong).status_code == 401
        assert httpx.get(srv.url + "/status", headers=wrong).status_code == 401
        for answer in (httpx.get(srv.url + "/status", headers=AUTH),
                       httpx.post(srv.url + "/login", json={"token": TOKEN}),
                       httpx.get(srv.url + "/status", headers=wrong)):
            assert answer.status_code == 429
            assert answer.headers["retry-after"] == "300"
            assert answer.json() == {
                "error": "too many failed attempts from this address: retry in 300 s"}
    assert len(refusals(caplog)) == 2  # the 429s counted no failure


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "localhost:1",
                                  "127.0.0.2:{port}"])
def test_a_host_that_is_not_the_admin_sockets_is_421_before_anything(
        caplog: pytest.LogCaptureFixture, host: str) -> None:
    """DNS rebinding: a page of evil.example re-pointed at 127.0.0.1 sends its own name."""
    with serve_admin(FakeBackend()) as srv:
        sent = host.format(port=srv.port)
        with srv.connect() as sock:
            sock.sendall(f"GET /status HTTP/1.1\r\nHost: {sent}\r\n"
                         f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 421 ")
        assert f"the Host '{sent}' is not this admin socket's name".encode() in data
        for name in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
            good = httpx.get(srv.url + "/status", headers={**AUTH, "Host": f"{name}:{srv.port}"})
            assert good.status_code == 200
    assert any("admin: 421 for GET /status" in r.getMessage() for r in caplog.records)


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
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 403 ")
