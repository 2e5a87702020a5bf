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
    POST   /login           {"token": ...} (JSON or form): the dashboard's cookie
    POST   /logout          end the dashboard's session
    GET    /, /assets/...   the dashboard (``dashboard``: another ASGI app)

Every route but ``POST /login`` needs the token or the session (``auth.py``).
An unknown path is a 404, a wrong method a 405 with ``Allow``, a body over
``max_body`` a 413; every answer is JSON but ``/metrics`` and the dashboard's.
A browser that opens ``/`` without a session gets the sign-in form (401).
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
from .auth import Guard, cookie_header, session_cookie
from .backend import AdminBackend
from .endpoints import Endpoints, log_change
from .install import Installer
from .signin import SIGNIN_PAGE
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
              guard: Guard | None = None, signin_page: bytes = SIGNIN_PAGE) -> AdminApp:
    """The admin socket's app for ``backend``, guarded by ``token``.

    ``guard`` replaces the default ``Guard(token)`` (tests: its clock, delays).
    """
    return AdminApp(backend, guard or Guard(token), dashboard=dashboard, max_body=max_body,
                    install_timeout=install_timeout, signin_page=signin_page)


class AdminApp:
    def __init__(self, backend: AdminBackend, guard: Guard, *, dashboard: ASGIApp,
                 max_body: int, install_timeout: float, signin_page: bytes) -> None:
        self.backend = backend
        self.guard = guard
        self.dashboard = dashboard
        self.max_body = max_body
        self.signin_page = signin_page
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
            await self._http(Request(scope, receive, self.max_body), send)
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
        identity, why = self.guard.identify(request)
        if not identity:
            if self._wants_signin(request):
                logger.info("admin: sign-in page for %s", request.client)
                return Answer(401, self.signin_page, "text/html; charset=utf-8",
                              [("www-authenticate", 'Bearer realm="qactuar admin"')])
            raise self.guard.refuse(request, why)
        self.guard.succeeded(request.address)
        request.identity = identity
        methods = self._methods(request.path)
        if methods is None:
            raise Refusal(404, f"no such admin endpoint: {printable(request.path)}")
        if request.method not in methods:
            allow = ", ".join(methods)
            raise Refusal(405, f"{request.path} takes {allow}", [("allow", allow)])
        problem = self.guard.csrf_problem(request)
        if problem:
            logger.warning("admin: 403 for %s %s from %s: %s", request.method,
                           printable(request.path), request.client, problem)
            raise Refusal(403, problem)
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

    def _wants_signin(self, request: Request) -> bool:
        """A browser opening the dashboard with no credentials at all."""
        return (request.path == "/" and request.method in ("GET", "HEAD")
                and "authorization" not in request.headers
                and session_cookie(request) is None
                and "text/html" in request.headers.get("accept", ""))

    # -- the dashboard's session --

    async def login(self, request: Request) -> Answer:
        form = request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded")
        body = await request.form_or_json()
        given = body.get("token")
        # again: requests sent side by side all passed the first check while their bodies came
        self.guard.check_penalty(request)
        if not isinstance(given, str) or not self.guard.token_matches(given):
            why = "a wrong token at sign-in" if isinstance(given, str) else "no token at sign-in"
            refusal = self.guard.refuse(request, why)
            if form:
                return Answer(401, self.signin_page, "text/html; charset=utf-8",
                              refusal.headers)
            raise refusal
        self.guard.succeeded(request.address)
        sid = self.guard.new_session()
        request.identity = "dashboard session"
        log_change(request, "signed in")
        cookie = cookie_header(sid, self.guard.session_age)
        if form:
            return json_answer(303, {"signed_in": True}, [cookie, ("location", "/")])
        return json_answer(200, {"signed_in": True}, [cookie])

    async def logout(self, request: Request) -> Answer:
        sid = session_cookie(request)
        if sid is not None:
            self.guard.end_session(sid)
        log_change(request, "signed out")
        return json_answer(200, {"signed_out": True}, [cookie_header("", 0)])
