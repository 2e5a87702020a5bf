"""The request lifecycle through the bridge, over real sockets, per ASGI server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import tornado.gen
import tornado.web
from tornado.ioloop import IOLoop

from qactuar.tornado_bridge import wrap

from .servers import DRIVERS, Serve, serve_in_thread


class LifecycleHandler(tornado.web.RequestHandler):
    """Records the hooks it goes through; `events` is given per test."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "OPTIONS", "DELETE")

    def initialize(self, events: list[str], greeting: str = "hello") -> None:
        self.events = events
        self.greeting = greeting
        events.append("initialize")

    async def prepare(self) -> None:
        await asyncio.sleep(0)
        self.events.append("prepare")
        if self.get_argument("stop_in_prepare", None):
            self.finish("stopped in prepare")

    def get(self, name: str) -> None:
        loop = IOLoop.current()
        self.write(
            {
                "greeting": self.greeting,
                "name": name,
                "ioloop_is_running_loop": loop.asyncio_loop is asyncio.get_running_loop(),  # type: ignore[attr-defined]
            }
        )

    def head(self, name: str) -> None:
        self.set_header("X-Name", name)
        self.set_header("Content-Length", "42")

    def post(self, name: str) -> None:
        self.set_status(201)
        self.write(b"posted " + self.request.body)

    def options(self, name: str) -> None:
        self.set_header("Allow", ", ".join(self.SUPPORTED_METHODS))
        self.set_status(204)

    def on_finish(self) -> None:
        self.events.append("on_finish")


def _app(events: list[str], **settings: Any) -> Any:
    return wrap([(r"/items/(\w+)", LifecycleHandler, {"events": events})], **settings)


def test_hooks_run_in_order_on_the_server_loop(serve: Serve) -> None:
    events: list[str] = []
    with serve(_app(events)) as url:
        response = httpx.get(f"{url}/items/apple")
    assert response.status_code == 200
    assert response.json() == {
        "greeting": "hello",
        "name": "apple",
        "ioloop_is_running_loop": True,
    }
    assert events == ["initialize", "prepare", "on_finish"]


def test_finish_in_async_prepare_skips_the_method(serve: Serve) -> None:
    events: list[str] = []
    with serve(_app(events)) as url:
        response = httpx.get(f"{url}/items/x?stop_in_prepare=1")
    assert response.text == "stopped in prepare"
    assert events == ["initialize", "prepare", "on_finish"]


def test_head_sends_headers_without_body(serve: Serve) -> None:
    with serve(_app([])) as url:
        response = httpx.head(f"{url}/items/pear")
    assert response.status_code == 200
    assert response.headers["x-name"] == "pear"
    assert response.headers["content-length"] == "42"
    assert response.content == b""


def test_options_and_post(serve: Serve) -> None:
    with serve(_app([])) as url, httpx.Client() as client:
        options = client.options(f"{url}/items/a")
        post = client.post(f"{url}/items/a", content=b"body")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, POST, OPTIONS, DELETE"
    assert post.status_code == 201
    assert post.text == "posted body"


def test_unsupported_and_unimplemented_methods_get_405(serve: Serve) -> None:
    with serve(_app([])) as url, httpx.Client() as client:
        not_supported = client.put(f"{url}/items/a", content=b"")
        not_implemented = client.delete(f"{url}/items/a")
    assert not_supported.status_code == 405
    assert not_implemented.status_code == 405


def test_unknown_path_gets_tornado_404_page(serve: Serve) -> None:
    with serve(_app([])) as url:
        response = httpx.get(f"{url}/nowhere")
    assert response.status_code == 404
    assert "<title>404: Not Found</title>" in response.text


class ErrorsHandler(tornado.web.RequestHandler):
    def get(self, kind: str) -> None:
        if kind == "http-error":
            raise tornado.web.HTTPError(418)
        if kind == "send-error":
            self.send_error(409)
            return
        if kind == "crash":
            raise ValueError("boom")
        if kind == "custom":
            raise tornado.web.HTTPError(422)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 422:
            self.set_header("Content-Type", "application/json")
            self.finish({"error": status_code})
        else:
            super().write_error(status_code, **kwargs)


def test_error_pages(serve: Serve) -> None:
    app = wrap([(r"/(.+)", ErrorsHandler)])
    with serve(app) as url, httpx.Client() as client:
        teapot = client.get(f"{url}/http-error")
        conflict = client.get(f"{url}/send-error")
        crash = client.get(f"{url}/crash")
        custom = client.get(f"{url}/custom")
    assert teapot.status_code == 418
    assert "418: I&#x27;m a Teapot" in teapot.text or "418: I'm a Teapot" in teapot.text
    assert conflict.status_code == 409
    assert "409: Conflict" in conflict.text
    assert crash.status_code == 500
    assert "500: Internal Server Error" in crash.text
    assert custom.status_code == 422
    assert custom.json() == {"error": 422}


def test_serve_traceback_in_debug_page(serve: Serve) -> None:
    app = wrap([(r"/(.+)", ErrorsHandler)], serve_traceback=True)
    with serve(app) as url:
        crash = httpx.get(f"{url}/crash")
    assert crash.status_code == 500
    assert "ValueError: boom" in crash.text


class RedirectHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.redirect("/target?x=1", status=303)


def test_redirect(serve: Serve) -> None:
    with serve(wrap([("/from", RedirectHandler)])) as url:
        response = httpx.get(f"{url}/from")
    assert response.status_code == 303
    assert response.headers["location"] == "/target?x=1"


class PathArgsHandler(tornado.web.RequestHandler):
    def get(self, first: str, second: str) -> None:
        self.write(
            {
                "first": first,
                "second": second,
                "path": self.request.path,
                "query": self.get_query_arguments("q"),
            }
        )


def test_percent_encoded_path_arguments_are_decoded_as_tornado_does(serve: Serve) -> None:
    with serve(wrap([(r"/p/([^/]+)/(.+)", PathArgsHandler)])) as url:
        response = httpx.get(f"{url}/p/a%2Fb%20c/%C3%A9t%C3%A9?q=x%26y&q=%E2%82%AC")
    assert response.json() == {
        "first": "a/b c",
        "second": "été",
        "path": "/p/a%2Fb%20c/%C3%A9t%C3%A9",
        "query": ["x&y", "€"],
    }


class HeadersHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_cookie("first", "1")
        self.set_cookie("second", "2", httponly=True)
        self.add_header("X-Repeat", "a")
        self.add_header("X-Repeat", "b")
        self.set_header("X-Cleared", "x")
        self.clear_header("X-Cleared")
        self.write("ok")


def test_repeated_headers_and_several_set_cookies_are_kept(serve: Serve) -> None:
    with serve(wrap([("/", HeadersHandler)])) as url:
        response = httpx.get(f"{url}/")
    set_cookies = response.headers.get_list("set-cookie")
    assert sorted(set_cookies) == ["first=1; Path=/", "second=2; HttpOnly; Path=/"]
    assert response.headers.get_list("x-repeat") == ["a", "b"]
    assert "x-cleared" not in response.headers
    # Tornado's own framing headers: Content-Length kept, no chunking.
    assert response.headers["content-length"] == "2"
    assert "transfer-encoding" not in response.headers


class FlushHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write("first,")
        await self.flush()
        self.write("second")


def test_flushed_response_without_content_length_is_framed_by_the_server(serve: Serve) -> None:
    with serve(wrap([("/", FlushHandler)])) as url:
        response = httpx.get(f"{url}/")
    assert response.text == "first,second"
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"


class LegacyLoopHandler(tornado.web.RequestHandler):
    """Callback-style code of the Tornado 4 era, on whatever loop serves it."""

    async def get(self) -> None:
        loop = IOLoop.current()
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        loop.add_callback(lambda: loop.call_later(0.01, done.set_result, "called later"))
        await tornado.gen.sleep(0.001)
        self.write({"result": await done, "loop": type(loop.asyncio_loop).__module__})  # type: ignore[attr-defined]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_ioloop_callbacks_work_on_the_servers_loop(loop_kind: str, server_name: str) -> None:
    factory = asyncio.new_event_loop
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    app = wrap([("/", LegacyLoopHandler)])
    with serve_in_thread(DRIVERS[server_name](), app, loop_factory=factory) as url:
        result = httpx.get(f"{url}/").json()
    assert result["result"] == "called later"
    assert result["loop"].startswith(loop_kind)


class InjectingHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        # Tornado checks header values, not names: the connection must.
        self.add_header("X-Evil\r\nSet-Cookie: stolen=1", "x")
        self.write("should not be sent")


def test_header_name_with_crlf_is_refused(serve: Serve) -> None:
    with serve(wrap([("/", InjectingHandler)])) as url:
        response = httpx.get(f"{url}/")
    assert response.status_code == 500
    assert "set-cookie" not in response.headers
    assert "should not be sent" not in response.text
