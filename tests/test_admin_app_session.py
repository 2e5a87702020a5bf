"""The dashboard's session: sign-in for a cookie, its limits, and CSRF on mutating requests.

Served by qactuar's core in a thread over a FakeBackend (support.adminfake).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from support.adminfake import TOKEN, FakeBackend, assert_no_token, serve_admin

from qactuar.admin.auth import Guard

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Session:
    """A dashboard session: its cookie (named for the admin port) and its secret."""

    def __init__(self, name: str, sid: str, secret: str) -> None:
        self.name, self.sid, self.secret = name, sid, secret

    def kw(self, **headers: str) -> dict[str, Any]:
        """httpx keywords: the cookie and the X-Qactuar-Session header (and ``headers``)."""
        return {"cookies": {self.name: self.sid},
                "headers": {"X-Qactuar-Session": self.secret, **headers}}


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        assert_no_token(record.getMessage())


def sign_in(url: str) -> tuple[httpx.Response, Session]:
    answer = httpx.post(url + "/login", json={"token": TOKEN})
    assert answer.status_code == 200, answer.text
    port = url.rsplit(":", 1)[1]
    name = f"qactuar_admin_{port}"
    return answer, Session(name, answer.cookies[name], answer.json()["session_secret"])


def test_signin_sets_an_httponly_strict_cookie_without_the_token() -> None:
    with serve_admin(FakeBackend()) as srv:
        answer, session = sign_in(srv.url)
        assert answer.json() == {"signed_in": True, "session_secret": session.secret}
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"qactuar_admin_{srv.port}=")  # the port: one per server
        attributes = [part.strip() for part in cookie.split(";")]
        assert "HttpOnly" in attributes and "SameSite=Strict" in attributes
        assert "Path=/" in attributes and "Secure" not in attributes
        assert_no_token(cookie)
        assert_no_token(answer.text)
        assert len(session.sid) >= 40 and len(session.secret) >= 40
        assert session.secret != session.sid
        status = httpx.get(srv.url + "/status", **session.kw())
        assert status.status_code == 200 and status.json()["model"] == "async"


@pytest.mark.parametrize("secret", [None, "wrong", "SID"])
def test_the_cookie_alone_is_not_enough(caplog: pytest.LogCaptureFixture,
                                        secret: str | None) -> None:
    """Cookies reach every port of the host: another local service the browser visits
    gets the cookie, and can forge an Origin, but has not the session's secret."""
    backend = FakeBackend()
    with serve_admin(backend, guard=Guard(TOKEN, delay_base=0.0)) as srv:  # no penalty
        _, session = sign_in(srv.url)
        headers = {"Origin": srv.url}
        if secret is not None:
            headers["X-Qactuar-Session"] = session.sid if secret == "SID" else secret
        cookies = {session.name: session.sid}
        assert httpx.get(srv.url + "/status", cookies=cookies,
                         headers=headers).status_code == 401
        answer = httpx.post(srv.url + "/reload", cookies=cookies, headers=headers)
        assert answer.status_code == 401
        assert backend.calls == []
        # the session is still good with its secret
        assert httpx.get(srv.url + "/status", **session.kw()).status_code == 200
    why = "without its x-qactuar-session" if secret is None else "a wrong x-qactuar-session"
    assert any("admin: 401 for GET /status" in r.getMessage() and why in r.getMessage()
               for r in caplog.records)


def test_a_stale_cookie_is_cleared() -> None:
    with serve_admin(FakeBackend()) as srv:
        answer = httpx.get(srv.url + "/status", cookies={f"qactuar_admin_{srv.port}": "old"},
                           headers={"X-Qactuar-Session": "old"})
        assert answer.status_code == 401
        assert answer.headers["set-cookie"].startswith(f"qactuar_admin_{srv.port}=; Max-Age=0")


def test_a_lone_surrogate_token_and_deep_json_are_400_or_401_not_500(
        caplog: pytest.LogCaptureFixture) -> None:
    with serve_admin(FakeBackend(), guard=Guard(TOKEN, delay_base=0.0)) as srv:
        odd = httpx.post(srv.url + "/login", content=b'{"token": "\\ud800"}',
                         headers={"content-type": "application/json"})
        assert odd.status_code == 401
        deep = httpx.post(srv.url + "/login", content=b"[" * 30000,
                          headers={"content-type": "application/json"})
        assert (deep.status_code, deep.json()) == (400, {"error": "the JSON is nested too "
                                                                  "deeply"})
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_cookie_change_must_be_json(kind: str | None) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        _, session = sign_in(srv.url)
        headers = {"Origin": srv.url}
        if kind is not None:
            headers["Content-Type"] = kind
        answer = httpx.post(srv.url + "/reload", content=b"{}", **session.kw(**headers))
        assert answer.status_code == 415
        assert answer.json()["error"].startswith("a change signed in by the dashboard's cookie "
                                                 "must be content-type: application/json")
        ok = httpx.post(srv.url + "/reload", json={}, **session.kw(Origin=srv.url))
        assert ok.status_code == 200
    assert backend.calls == [("reload", None)]


def test_signin_takes_json_only() -> None:
    with serve_admin(FakeBackend()) as srv:
        answer = httpx.post(srv.url + "/login", data={"token": TOKEN})
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("invalid JSON")
        assert "set-cookie" not in answer.headers


def test_signin_with_a_wrong_token_is_a_logged_401(caplog: pytest.LogCaptureFixture) -> None:
    with serve_admin(FakeBackend()) as srv:
        assert httpx.post(srv.url + "/login", content=b"{").status_code == 400  # no failure
        answer = httpx.post(srv.url + "/login", json={"token": TOKEN + "x"})
        assert answer.status_code == 401 and "set-cookie" not in answer.headers
        assert httpx.post(srv.url + "/login", json={}).status_code == 401
    lines = [r.getMessage() for r in caplog.records if "admin: 401 for POST /login" in
             r.getMessage()]
    assert len(lines) == 2 and "from 127.0.0.1:" in lines[0]


def test_logout_ends_the_session() -> None:
    with serve_admin(FakeBackend()) as srv:
        _, session = sign_in(srv.url)
        url = srv.url
        answer = httpx.post(url + "/logout", json={}, **session.kw(Origin=url))
        assert answer.status_code == 200
        assert "Max-Age=0" in answer.headers["set-cookie"]
        assert httpx.get(url + "/status", **session.kw()).status_code == 401


def test_sessions_are_bounded_in_number_and_age() -> None:
    now = [1000.0]
    guard = Guard(TOKEN, max_sessions=2, session_age=60.0, clock=lambda: now[0])
    with serve_admin(FakeBackend(), guard=guard) as srv:
        first, second, third = (sign_in(srv.url)[1] for _ in range(3))
        assert httpx.get(srv.url + "/config", **first.kw()).status_code == 401
        assert httpx.get(srv.url + "/config", **second.kw()).status_code == 200
        now[0] += 61.0
        assert httpx.get(srv.url + "/config", **third.kw()).status_code == 401
        assert guard.sessions == 1  # the expired one is gone; the other not yet looked at


@pytest.mark.parametrize("headers, status, reason", [
    ({}, 403, "must carry an Origin or Referer"),
    ({"Origin": "http://evil.example"}, 403, "'http://evil.example' is not this admin"),
    ({"Origin": "null"}, 403, "'null' is not"),
    ({"Referer": "http://evil.example/page"}, 403, "Referer 'http://evil.example'"),
    ({"Origin": "OWN"}, 200, ""),
    ({"Referer": "OWN/dashboard"}, 200, ""),
])
def test_a_cookie_patch_must_come_from_the_admin_origin(
        caplog: pytest.LogCaptureFixture, headers: dict[str, str], status: int,
        reason: str) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        _, session = sign_in(srv.url)
        headers = {k: v.replace("OWN", srv.url) for k, v in headers.items()}
        answer = httpx.patch(srv.url + "/config", json={"REQUEST_TIMEOUT": 2},
                             **session.kw(**headers))
        assert answer.status_code == status, answer.text
        if status == 403:
            assert answer.json()["error"].startswith("CSRF: ")
            assert reason in answer.json()["error"]
            assert backend.calls == []
            [line] = [r.getMessage() for r in caplog.records if "admin: 403" in r.getMessage()]
            assert "PATCH /config from 127.0.0.1:" in line and reason in line
        else:
            assert backend.calls == [("apply_config", {"REQUEST_TIMEOUT": 2.0})]
            [line] = [r.getMessage() for r in caplog.records
                      if r.getMessage().startswith("admin: config")]
            assert line.endswith("(dashboard session)")


def test_a_cookie_read_needs_no_origin_and_a_bearer_patch_none_either() -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        _, session = sign_in(srv.url)
        assert httpx.get(srv.url + "/config", **session.kw()).status_code == 200
        answer = httpx.patch(srv.url + "/config", json={"REQUEST_TIMEOUT": 3}, headers=AUTH)
        assert answer.status_code == 200
        bearer_with_foreign_origin = httpx.post(
            srv.url + "/reload", headers={**AUTH, "Origin": "http://evil.example"})
        assert bearer_with_foreign_origin.status_code == 200
    assert backend.calls == [("apply_config", {"REQUEST_TIMEOUT": 3.0}), ("reload", None)]
