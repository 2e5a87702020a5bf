"""The admin socket's ASGI app: ``admin_app(backend, token, dashboard=...)``.

A plain ASGI 3 app (no framework) that qactuar's core serves on the admin
socket. Routes::

    GET    /status          the server at a glance (JSON)
    GET    /status/series   the last minutes, one point a second (charts)
    GET    /metrics         Prometheus text format
    GET    /config          the config in force (secrets masked), the live keys
    PATCH  /config          change live keys: {"KEY": value, ...}
    POST   /config/save     write the config in force to its file
    GET    /apps            the mounted apps
    POST   /apps            {"route": "/blog", "app": "module:attr"} (or "git": URL)
    DELETE /apps/{route}    unmount ("/apps/api/v2" unmounts "/api/v2")
    POST   /reload          re-import every app
    POST   /login           {"token": ...} (JSON): the dashboard's cookie and secret
    POST   /logout          end the dashboard's session
    GET    /, /assets/...   the dashboard (``dashboard``: another ASGI app)

Every route but ``POST /login`` and the dashboard's static files needs the
token or the session (``auth.py``). The page and its assets are the same
files for everyone and hold nothing of the server: a browser without a
session gets the page, whose script asks for the token when ``/status``
answers 401. Before anything, the Host must be the admin socket's own
(421) and an address in penalty gets 429. An unknown path is a 404, a wrong
method a 405 with ``Allow``, a body over ``max_body`` a 413; every answer is
JSON but ``/metrics`` and the dashboard's.
The lifespan starts the figures' sampler (``status.Sampler``); without one,
the figures are sampled by the requests themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..asgi.types import ASGIApp, Receive, Scope, Send
from ..logs import printable
from .auth import NO_CREDENTIAL, Guard, cookie_header, cookie_name, session_cookie
from .backend import AdminBackend
from .endpoints import Endpoints, log_change
from .install import Installer
from .status import Sampler
from .web import Answer, Refusal, Request, json_answer

__all__ = ["AdminApp", "admin_app"]

logger = logging.getLogger("qt_server")

Handler = Callable[[Request], Awaitable[Answer]]
MAX_BODY = 64 * 1024


async def no_dashboard(scope: Scope, receive: Receive, send: Send) -> None:
    """The dashboard's stand-in: 404."""
    await json_answer(404, {"error": "the dashboard is not installed"}).send(send)


def admin_app(backend: AdminBackend, token: str, *, dashboard: ASGIApp = no_dashboard,
              max_body: int = MAX_BODY, install_timeout: float = 300.0,
              guard: Guard | None = None) -> AdminApp:
    """The admin socket's app for ``backend``, guarded by ``token``.

    ``guard`` replaces the default ``Guard(token)`` (tests: its clock, delays).
    """
    return AdminApp(backend, guard or Guard(token), dashboard=dashboard, max_body=max_body,
                    install_timeout=install_timeout)


class AdminApp:
    def __init__(self, backend: AdminBackend, guard: Guard, *, dashboard: ASGIApp,
                 max_body: int, install_timeout: float) -> None:
        self.backend = backend
        self.guard = guard
        self.dashboard = dashboard
        self.max_body = max_body
        self.sampler = Sampler(backend)
        self.endpoints = Endpoints(backend, self.sampler, Installer(backend, install_timeout))
        self._sampling: asyncio.Task[None] | None = None
        e = self.endpoints
        #: path -> method -> handler
        self.routes: dict[str, dict[str, Handler]] = {
            "/status": {"GET": e.status},
            "/status/series": {"GET": e.series},
            "/metrics": {"GET": e.metrics},
            "/config": {"GET": e.get_config, "PATCH": e.patch_config},
            "/config/save": {"POST": e.save_config},
            "/apps": {"GET": e.get_apps, "POST": e.post_apps},
            "/reload": {"POST": e.reload},
            "/logout": {"POST": self.logout},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            request = Request(scope, receive, self.max_body)
            request.cookie_name = cookie_name(scope.get("server"), self.backend.config.ADMIN_UDS)
            await self._http(request, send)
        else:  # a WebSocket: nothing here speaks it
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Start the sampler's task, on the running loop (once)."""
        if self._sampling is None:
            self._sampling = asyncio.ensure_future(self.sampler.run())

    async def close(self) -> None:
        """Stop the sampler's task."""
        task, self._sampling = self._sampling, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _http(self, request: Request, send: Send) -> None:
        try:
            answer = await self._answer(request, send)
        except Refusal as refusal:
            answer = refusal.answer()
        except Exception:
            if request.delegated:
                raise  # the dashboard's own failure: the core answers (or closes) for it
            logger.exception("admin: %s %s failed", request.method, printable(request.path))
            answer = json_answer(500, {"error": "the admin socket failed: see the server's log"})
        if answer is not None:
            await answer.send(send, head_only=request.method == "HEAD")

    async def _answer(self, request: Request, send: Send) -> Answer | None:
        problem = self.guard.host_problem(request, self.backend.config.ADMIN_HOST)
        if problem:
            logger.warning("admin: 421 for %s %s from %s: %s", request.method,
                           printable(request.path), request.client, problem)
            raise Refusal(421, problem)
        self.guard.check_penalty(request)
        if request.path == "/login":
            if request.method != "POST":
                raise Refusal(405, "use POST", [("allow", "POST")])
            return await self.login(request)
        if self._is_dashboard(request.path) and request.method in ("GET", "HEAD"):
            # the page and its files: the same for everyone, nothing of the server in them
            request.delegated = True
            await self.dashboard(request.scope, request.receive, send)
            return None
        identity, why = self.guard.identify(request)
        if not identity:
            refusal = self.guard.refuse(request, why, guess=why != NO_CREDENTIAL)
            if session_cookie(request) is not None and "unknown or expired" in why:
                refusal.headers.append(cookie_header(request.cookie_name, "", 0))
            raise refusal
        self.guard.succeeded(request.address)
        request.identity = identity
        methods = self._methods(request.path)
        if methods is None:
            raise Refusal(404, f"no such admin endpoint: {printable(request.path)}")
        if request.method not in methods:
            allow = ", ".join(methods)
            raise Refusal(405, f"{request.path} takes {allow}", [("allow", allow)])
        refused = self.guard.csrf_problem(request)
        if refused:
            status, problem = refused
            logger.warning("admin: %d for %s %s from %s: %s", status, request.method,
                           printable(request.path), request.client, problem)
            raise Refusal(status, problem)
        if self._is_dashboard(request.path):
            request.delegated = True
            await self.dashboard(request.scope, request.receive, send)
            return None
        handler = methods[request.method] if request.method != "HEAD" else methods["GET"]
        return await handler(request)

    def _methods(self, path: str) -> dict[str, Handler] | None:
        if path in self.routes:
            found = dict(self.routes[path])
        elif path.startswith("/apps/") and len(path) > len("/apps/"):
            found = {"DELETE": self.endpoints.delete_app}
        elif self._is_dashboard(path):
            found = {"GET": self._unused}
        else:
            return None
        if "GET" in found:
            found["HEAD"] = found["GET"]
        return found

    async def _unused(self, request: Request) -> Answer:
        raise AssertionError("the dashboard's routes go to the dashboard app")

    @staticmethod
    def _is_dashboard(path: str) -> bool:
        return path == "/" or path.startswith("/assets/")

    # -- the dashboard's session --

    async def login(self, request: Request) -> Answer:
        body = await request.json_object()
        given = body.get("token")
        # again: requests sent side by side all passed the first check while their bodies came
        self.guard.check_penalty(request)
        if not isinstance(given, str) or not self.guard.token_matches(given):
            why = "a wrong token at sign-in" if isinstance(given, str) else "no token at sign-in"
            raise self.guard.refuse(request, why)
        self.guard.succeeded(request.address)
        sid, secret = self.guard.new_session()
        request.identity = "dashboard session"
        log_change(request, "signed in")
        cookie = cookie_header(request.cookie_name, sid, self.guard.session_age)
        return json_answer(200, {"signed_in": True, "session_secret": secret}, [cookie])

    async def logout(self, request: Request) -> Answer:
        sid = session_cookie(request)
        if sid is not None:
            self.guard.end_session(sid)
        log_change(request, "signed out")
        return json_answer(200, {"signed_out": True}, [cookie_header(request.cookie_name, "", 0)])
