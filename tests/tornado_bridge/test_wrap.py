"""wrap() and is_tornado_object(): what they accept, refuse and warn about."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import tornado.web
from tornado.routing import PathMatches, Rule, RuleRouter

from qactuar.tornado_bridge import TornadoBridgeWarning, is_tornado_object, wrap


class Handler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    pass


@pytest.mark.parametrize(
    "obj",
    [
        tornado.web.Application([("/", Handler)]),
        Handler,
        [("/", Handler)],
        [(r"/(\d+)", Handler, {}), tornado.web.url("/x", Handler, name="x")],
        [Rule(PathMatches("/"), Handler)],
        RuleRouter([("/", tornado.web.Application())]),
    ],
)
def test_tornado_objects_are_recognised(obj: object) -> None:
    assert is_tornado_object(obj)


@pytest.mark.parametrize(
    "obj",
    [
        asgi_app,
        object(),
        "module:attr",
        [],
        [("/", asgi_app)],
        [("/", "not a handler")],
        int,
    ],
)
def test_other_objects_are_not(obj: object) -> None:
    assert not is_tornado_object(obj)


def test_wrap_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(TypeError, match="not <function asgi_app"):
        wrap(asgi_app)  # type: ignore[arg-type]


def test_settings_for_a_built_application_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"\['cookie_secret', 'pattern'\].*Application"):
        wrap(tornado.web.Application(), cookie_secret="x", pattern="/")


def test_handler_options_need_a_handler() -> None:
    with pytest.raises(TypeError, match="single RequestHandler"):
        wrap([("/", Handler)], pattern="/x")


def test_debug_keeps_its_conveniences_but_not_autoreload() -> None:
    with pytest.warns(TornadoBridgeWarning, match="autoreload is turned off"):
        app = wrap([("/", Handler)], debug=True)
    settings = app.tornado_app.settings  # type: ignore[attr-defined]
    assert settings["autoreload"] is False
    assert settings["serve_traceback"] is True
    assert settings["compiled_template_cache"] is False


def test_autoreload_on_a_built_application_is_turned_off_with_a_warning() -> None:
    built = tornado.web.Application([("/", Handler)], autoreload=False)
    built.settings["autoreload"] = True  # as if built with it (without starting it here)
    with pytest.warns(TornadoBridgeWarning, match="build it with autoreload=False"):
        wrap(built)
    assert built.settings["autoreload"] is False


def test_no_warning_without_autoreload(recwarn: pytest.WarningsRecorder) -> None:
    wrap([("/", Handler)], cookie_secret="x")
    assert not [w for w in recwarn if issubclass(w.category, TornadoBridgeWarning)]


def _drive(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if not incoming:
            await asyncio.Event().wait()  # As a server: nothing until disconnect.
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_lifespan_is_acknowledged() -> None:
    sent = _drive(
        wrap(Handler),
        {"type": "lifespan", "asgi": {"version": "3.0"}},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_malformed_websocket_handshake_is_refused() -> None:
    """No Host header: Tornado answers 400; without the denial extension, a close."""
    scope: dict[str, Any] = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    sent = _drive(wrap(Handler), scope, [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.close", "code": 1000}]
    scope["extensions"] = {"websocket.http.response": {}}
    sent = _drive(wrap(Handler), scope, [{"type": "websocket.connect"}])
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 400


def test_request_without_raw_path_or_host_is_served() -> None:
    """Minimal scopes (no raw_path, no Host: e.g. some HTTP/2 servers) still route."""
    scope = {
        "type": "http",
        "http_version": "2",
        "method": "GET",
        "scheme": "https",
        "path": "/caf\u00e9",
        "query_string": b"",
        "headers": [],
        "server": ("example.test", 8443),
        "client": ("192.0.2.1", 5000),
    }

    class Echo(tornado.web.RequestHandler):
        def get(self, name: str) -> None:
            self.write(f"{name} {self.request.full_url()} {self.request.remote_ip}")

    sent = _drive(wrap([(r"/(.*)", Echo)]), scope, [{"type": "http.request", "body": b""}])
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.decode() == "caf\u00e9 https://example.test:8443/caf%C3%A9 192.0.2.1"


class PingHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("pong")


def test_ioloop_stranded_before_serving_is_reported(serve: Any) -> None:
    """An IOLoop made before the server's loop (e.g. at import time) is named."""
    from tornado.ioloop import IOLoop

    stranded = IOLoop(make_current=False)  # bound to a loop the server never runs
    try:
        with pytest.warns(TornadoBridgeWarning, match="1 Tornado IOLoop"):
            with serve(wrap(PingHandler)) as url:
                assert httpx.get(url).text == "pong"
    finally:
        stranded.close(all_fds=True)


def test_no_stranded_ioloop_no_warning(serve: Any, recwarn: pytest.WarningsRecorder) -> None:
    with serve(wrap(PingHandler)) as url:
        assert httpx.get(url).text == "pong"
    assert not [w for w in recwarn if issubclass(w.category, TornadoBridgeWarning)]


class PathEcho(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(self.request.uri or "")


@pytest.mark.parametrize(
    ("path", "raw_path", "strip", "seen"),
    [
        # Current practice: path is the full path, root_path the mount.
        ("/a/b c", b"/a/b%20c", False, "/a/b%20c?q=1"),
        ("/a/b c", b"/a/b%20c", True, "/b%20c?q=1"),
        # Older routers: path relative to root_path, raw_path full.
        ("/b c", b"/a/b%20c", False, "/a/b%20c?q=1"),
        ("/b c", b"/a/b%20c", True, "/b%20c?q=1"),
        # No raw_path at all: the path is encoded again.
        ("/a/b c", None, False, "/a/b%20c?q=1"),
        # A raw_path that disagrees with path (rewritten by a router) loses.
        ("/a/other", b"/a/b%20c", False, "/a/other?q=1"),
    ],
)
def test_uri_from_scope_conventions(
    path: str, raw_path: bytes | None, strip: bool, seen: str
) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "root_path": "/a",
        "query_string": b"q=1",
        "headers": [(b"host", b"test")],
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    app = wrap([(r".*", PathEcho)], strip_root_path=strip)
    sent = _drive(app, scope, [{"type": "http.request", "body": b""}])
    assert b"".join(m.get("body", b"") for m in sent[1:]).decode() == seen
