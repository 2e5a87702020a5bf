"""A stand-in for the admin socket's app, for the CLI's and the dashboard's tests.

An ASGI app (served by qactuar's core with the ``serve`` fixture) that answers
the admin API with canned JSON of the shapes the dashboard's script and
``qactuar admin`` read (written at the top of
qactuar/admin/static/dashboard.js), checks the token (``Authorization:
Bearer`` or the session cookie that ``POST /login`` sets, with the
``X-Qactuar-Session`` secret it answers), refuses a cookie-authenticated
change without an ``Origin`` of its own host (as the real app's CSRF check
does) and records every API request in ``requests`` for the test to read.
``GET /`` and ``GET /assets/*`` go to the real ``dashboard_app``, without a
token, as the real app delegates them. Each ``GET /status`` answers bigger
counters than the one before (7 more requests: 6 2xx, 1 4xx), so a page's
requests/s rises.

Two dialects, where the admin app (wt-adminapp, as of this writing) and the
brief the dashboard was written from differ; the dashboard and the CLI read both:

- ``"app"``: ``totals.requests_per_second``, ``processes[].cpu_percent``,
  ``GET /status/series`` -> ``{"interval": 1, "points": [...]}`` (one more point,
  at 7 requests/s, each time it is asked), ``GET /config`` -> ``{"config", "live"}``;
- ``"brief"``: ``totals.rps``, ``processes[].cpu`` (seconds), no ``/status/series``
  (404: the page's rates come from /status' counters), ``GET /config`` ->
  ``{"config", "live_keys"}``.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from typing import Any

from qactuar.admin.dashboard import dashboard_app

TOKEN = "stand-in-token-3f9c"
COOKIE = "qt_admin"

PROCESSES: list[dict[str, Any]] = [
    {"pid": 4100, "role": "master", "state": "ready", "age": 3725.4, "requests": 0,
     "cpu": 1.25, "rss": 41943040},
    {"pid": 4101, "role": "worker", "state": "serving", "age": 65.0, "requests": 1234,
     "cpu": 12.5, "rss": 52428800},
    {"pid": 4102, "role": "worker", "state": "ready", "age": 5.9, "requests": 7,
     "cpu": 0.05, "rss": 31457280},
]
CONFIG: dict[str, Any] = {"MODEL": "prefork", "PORT": 8000, "REQUEST_TIMEOUT": 30.0,
                          "MAX_REQUESTS": 0, "ACCESS_LOG": True, "LOG_LEVEL": "info",
                          "ADMIN_TOKEN": "********"}
LIVE_KEYS = ["ACCESS_LOG", "LOG_LEVEL", "MAX_REQUESTS", "REQUEST_TIMEOUT"]
APPS: list[dict[str, Any]] = [
    {"route": "/", "target": "basic:hello", "source": "config"},
    {"route": "/api/v2", "target": "api.main:app", "source": "admin"},
]


class StandIn:
    """The app; ``requests``: every API request as (method, path, headers, JSON body)."""

    def __init__(self, dialect: str = "app") -> None:
        assert dialect in ("app", "brief")
        self.dialect = dialect
        self.points: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        #: session id (the cookie) -> its secret (the X-Qactuar-Session header)
        self.sessions: dict[str, str] = {}
        self.calls = 0
        self.config = copy.deepcopy(CONFIG)
        self.apps = copy.deepcopy(APPS)
        #: paths answered 500 {"error": "the backend raised"}, as a failing admin app would
        self.failing: set[str] = set()

    def status(self) -> dict[str, Any]:
        self.calls += 1
        n = self.calls
        processes = copy.deepcopy(PROCESSES)
        processes[1]["requests"] += 7 * n
        if self.dialect == "app":
            for p in processes:
                p["cpu_percent"] = round(p.pop("cpu") * 2, 1)
        status: dict[str, Any] = {
            "model": "prefork", "version": "0.2.0", "pid": 4100, "uptime": 3725.4,
            "totals": {
                "requests": 1241 + 7 * n,
                "rps": {"1m": 1.5, "5m": 0.4, "15m": 0.125},
                "in_flight": 2,
                "connections": {"http": 3, "websocket": 1},
                "status_classes": {"1xx": 0, "2xx": 1200 + 6 * n, "3xx": 0, "4xx": 37 + n,
                                   "5xx": 4},
                "latency": {"p50": 0.0012, "p95": 0.004, "p99": 0.0105},
            },
            "processes": processes,
            "config": self.config,
        }
        if self.dialect == "app":
            status["totals"]["requests_per_second"] = status["totals"].pop("rps")
        return status

    def series(self) -> dict[str, Any]:
        """Five points of history, then one more each time it is asked."""
        now = time.time()
        if not self.points:
            self.points = [self.point(now - 5 + i, 5.0) for i in range(5)]
        elif now > self.points[-1]["t"]:
            self.points.append(self.point(now, 7.0))
        return {"interval": 1.0, "points": self.points}

    @staticmethod
    def point(t: float, rps: float) -> dict[str, Any]:
        return {"t": t, "rps": rps, "p50": 0.0012, "p99": 0.0105,
                "classes": {"1xx": 0.0, "2xx": rps - 1, "3xx": 0.0, "4xx": 1.0, "5xx": 0.0},
                "processes": 3, "rss": 125829120}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await dashboard_app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and (path == "/" or path.startswith("/assets/")):
            await dashboard_app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append((method, path, headers, body))
        status, answer, extra = self.answer(method, path, headers, body)
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()), *extra]})
        await send({"type": "http.response.body", "body": payload})

    def answer(self, method: str, path: str, headers: dict[str, str],
               body: Any) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        if (method, path) == ("POST", "/login"):
            if not isinstance(body, dict) or body.get("token") != TOKEN:
                return 401, {"error": "wrong token"}, []
            session, secret = secrets.token_hex(16), secrets.token_hex(16)
            self.sessions[session] = secret
            cookie = f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict"
            return 200, {"ok": True, "session_secret": secret}, [(b"set-cookie", cookie.encode())]
        by_cookie = self.cookie_session(headers)
        if headers.get("authorization") != f"Bearer {TOKEN}" and by_cookie is None:
            return 401, {"error": "missing or wrong token"}, []
        if by_cookie is not None and method != "GET":
            if headers.get("origin") != f"http://{headers.get('host')}":
                return 403, {"error": "cross-origin request refused"}, []
            if headers.get("content-type") != "application/json":
                return 415, {"error": "JSON only"}, []
        if (method, path) == ("POST", "/logout"):
            self.sessions.pop(by_cookie or "", None)
            return 200, {"ok": True}, [(b"set-cookie", f"{COOKIE}=; Path=/; Max-Age=0".encode())]
        if path in self.failing:
            return 500, {"error": "the backend raised"}, []
        if (method, path) == ("GET", "/status"):
            return 200, self.status(), []
        if (method, path) == ("GET", "/status/series") and self.dialect == "app":
            return 200, self.series(), []
        if (method, path) == ("GET", "/config"):
            live = "live" if self.dialect == "app" else "live_keys"
            return 200, {"config": self.config, live: LIVE_KEYS}, []
        if (method, path) == ("PATCH", "/config"):
            return self.patch(body)
        if (method, path) == ("GET", "/apps"):
            return 200, {"apps": self.apps}, []
        if (method, path) == ("POST", "/apps"):
            self.apps.append({"route": body["route"], "target": body["app"], "source": "admin"})
            return 201, self.apps[-1], []
        if method == "DELETE" and path.startswith("/apps/"):
            route = "/" + path[len("/apps/"):]
            if not any(app["route"] == route for app in self.apps):
                return 404, {"error": f"no app is mounted at {route}"}, []
            self.apps = [app for app in self.apps if app["route"] != route]
            return 200, {"unmounted": route}, []
        if (method, path) == ("POST", "/reload"):
            return 200, {"reloaded": True}, []
        return 404, {"error": f"no {method} {path}"}, []

    def patch(self, body: Any) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        for key, value in body.items():
            if key not in self.config:
                return 400, {"error": f"unknown key {key}"}, []
            if key not in LIVE_KEYS:
                return 409, {"error": f"{key} needs a restart"}, []
            if not _same_type(value, CONFIG[key]):
                return 400, {"error": f"{key}: expected {type(CONFIG[key]).__name__}, "
                                      f"got {json.dumps(value)}"}, []
        self.config.update(body)
        return 200, {"config": self.config}, []

    def cookie_session(self, headers: dict[str, str]) -> str | None:
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if (name == COOKIE and value in self.sessions
                    and headers.get("x-qactuar-session") == self.sessions[value]):
                return value
        return None

    def recorded(self, method: str, path: str) -> list[tuple[dict[str, str], Any]]:
        with self.lock:
            return [(h, b) for m, p, h, b in self.requests if (m, p) == (method, path)]


def _same_type(value: Any, like: Any) -> bool:
    if isinstance(like, bool) or isinstance(value, bool):
        return type(value) is type(like)
    if isinstance(like, float):
        return isinstance(value, int | float)
    return type(value) is type(like)
