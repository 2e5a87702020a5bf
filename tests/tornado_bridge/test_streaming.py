"""Streaming both ways, and the client going away, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import tornado.web
from support import read_until_closed, wait_until

from qactuar.tornado_bridge import wrap

from .servers import Serve

WAIT = 10.0  # Upper bound on any wait in these tests, in seconds.


async def _wait_for_thread_event(event: threading.Event) -> bool:
    """Let the handler wait, on its loop, for an event the test thread sets."""
    deadline = time.monotonic() + WAIT
    while not event.is_set():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


class FlushThenWaitHandler(tornado.web.RequestHandler):
    def initialize(self, go_on: threading.Event) -> None:
        self.go_on = go_on

    async def get(self) -> None:
        self.write("first chunk|")
        await self.flush()
        if not await _wait_for_thread_event(self.go_on):
            self.write("TIMED OUT")
        self.write("second chunk")


def test_flushed_chunk_reaches_client_before_handler_finishes(serve: Serve) -> None:
    go_on = threading.Event()
    app = wrap([("/", FlushThenWaitHandler, {"go_on": go_on})])
    with serve(app) as url, httpx.Client(timeout=WAIT) as client:
        with client.stream("GET", f"{url}/") as response:
            chunks = response.iter_raw()
            first = next(chunks)
            # The handler is still waiting for go_on: this came from flush().
            assert first == b"first chunk|"
            go_on.set()
            rest = b"".join(chunks)
    assert rest == b"second chunk"


class SlowHandler(tornado.web.RequestHandler):
    def initialize(
        self,
        started: threading.Event,
        closed: threading.Event,
        finished: threading.Event | None = None,
    ) -> None:
        self.started = started
        self.closed = closed
        self.finished = finished

    async def get(self) -> None:
        self.started.set()
        for _ in range(int(WAIT / 0.01)):
            if self.closed.is_set():
                break
            await asyncio.sleep(0.01)
        self.write("too late")

    def on_connection_close(self) -> None:
        self.closed.set()

    def on_finish(self) -> None:
        if self.finished is not None:
            self.finished.set()


def _raw_request(url: str, request: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT)
    sock.sendall(request)
    return sock


def test_client_disconnect_calls_on_connection_close(serve: Serve) -> None:
    started, closed = threading.Event(), threading.Event()
    app = wrap([("/", SlowHandler, {"started": started, "closed": closed})])
    with serve(app) as url:
        sock = _raw_request(url, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert started.wait(WAIT)
        sock.close()
        assert closed.wait(WAIT), "on_connection_close was not called"


@tornado.web.stream_request_body
class CountingUploadHandler(tornado.web.RequestHandler):
    def initialize(self, record: dict[str, Any]) -> None:
        self.record = record

    def prepare(self) -> None:
        self.record["pieces"] = []
        self.record["closed"] = threading.Event()

    async def data_received(self, chunk: bytes) -> None:
        self.record["pieces"].append(len(chunk))
        # Flow control: nothing more may arrive before this returns.
        self.record["in_flight"] = self.record.get("in_flight", 0) + 1
        assert self.record["in_flight"] == 1, "data_received called concurrently"
        await asyncio.sleep(0.001)
        self.record["in_flight"] -= 1

    def put(self) -> None:
        self.write({"pieces": len(self.record["pieces"]), "bytes": sum(self.record["pieces"])})

    def on_connection_close(self) -> None:
        self.record["closed"].set()


def test_stream_request_body_is_fed_in_chunk_size_pieces(serve: Serve) -> None:
    record: dict[str, Any] = {}
    app = wrap([("/upload", CountingUploadHandler, {"record": record})], chunk_size=1000)

    def body() -> Any:
        for _ in range(20):
            yield b"x" * 2500

    with serve(app) as url:
        response = httpx.put(f"{url}/upload", content=body(), timeout=WAIT)
    assert response.json()["bytes"] == 50_000
    assert max(record["pieces"]) <= 1000
    assert response.json()["pieces"] >= 50


def test_client_gone_during_upload_calls_on_connection_close(serve: Serve) -> None:
    record: dict[str, Any] = {}
    app = wrap([("/upload", CountingUploadHandler, {"record": record})])
    with serve(app) as url:
        sock = _raw_request(
            url, b"PUT /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10
        )
        wait_until(lambda: record.get("pieces"), WAIT, what="the first piece of the upload")
        sock.close()
        assert record["closed"].wait(WAIT), "on_connection_close was not called"


@tornado.web.stream_request_body
class RefusingUploadHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(401)

    def put(self) -> None:
        raise AssertionError("not reached")


def test_early_answer_closes_connection_with_unread_body(serve: Serve) -> None:
    """Answered before the body was read: the connection is not reused (as Tornado)."""
    with serve(wrap([("/upload", RefusingUploadHandler)])) as url:
        sock = _raw_request(
            url, b"PUT /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        with sock:
            received = read_until_closed(sock, WAIT)
    assert received.startswith(b"HTTP/1.1 401")


def test_body_over_max_body_size_gets_400(serve: Serve) -> None:
    record: dict[str, Any] = {}
    app = wrap([("/upload", CountingUploadHandler, {"record": record})], max_body_size=1000)
    with serve(app) as url:
        response = httpx.put(f"{url}/upload", content=b"x" * 5000)
    assert response.status_code == 400


class EchoHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        self.write(self.request.body)


@pytest.mark.parametrize("size", [0, 1, 70_000, 1_000_000])
def test_request_body_arrives_whole(serve: Serve, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    with serve(wrap([("/", EchoHandler)])) as url:
        response = httpx.post(f"{url}/", content=payload, timeout=WAIT)
    assert response.content == payload


def test_body_slower_than_body_timeout_gets_408(serve: Serve) -> None:
    app = wrap([("/", EchoHandler)], body_timeout=0.2)
    with serve(app) as url:
        sock = _raw_request(url, b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        with sock:
            received = read_until_closed(sock, WAIT)
    assert received.startswith(b"HTTP/1.1 408")


#: The scope of ``GET /`` for the tests that call the app without a server.
GET_SCOPE: dict[str, Any] = {
    "type": "http",
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": [(b"host", b"test")],
    "client": ("127.0.0.1", 1234),
    "server": ("127.0.0.1", 80),
}


def test_server_cancelling_the_call_tells_the_handler() -> None:
    """A server may cancel the app's task when its client goes: on_connection_close."""
    started, closed, finished = threading.Event(), threading.Event(), threading.Event()
    kwargs = {"started": started, "closed": closed, "finished": finished}
    app = wrap([("/", SlowHandler, kwargs)])
    scope = dict(GET_SCOPE)
    sent: list[Any] = []

    async def main() -> None:
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> Any:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()

        async def send(message: Any) -> None:
            sent.append(message)

        call = asyncio.ensure_future(app(scope, receive, send))
        while not started.is_set():
            await asyncio.sleep(0.001)
        call.cancel()
        await asyncio.wait([call])
        # The handler was not cancelled: it ends on its own, having heard.
        for _ in range(100):
            if finished.is_set():
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert closed.is_set()
    assert finished.is_set(), "the handler did not run to its end"
    assert sent == []


class QuickHandler(tornado.web.RequestHandler):
    def initialize(self, closed: threading.Event) -> None:
        self.closed = closed

    def get(self) -> None:
        self.write("done")

    def on_connection_close(self) -> None:
        self.closed.set()


def test_disconnect_reported_while_the_last_message_is_in_flight() -> None:
    """Hypercorn reports http.disconnect while its send of the last body yields."""
    closed = threading.Event()
    app = wrap([("/", QuickHandler, {"closed": closed})])
    scope = dict(GET_SCOPE)
    sent: list[Any] = []

    async def main() -> None:
        request_done = False
        gone = asyncio.Event()

        async def receive() -> Any:
            nonlocal request_done
            if not request_done:
                request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                gone.set()
                for _ in range(3):
                    await asyncio.sleep(0)  # the watcher runs meanwhile
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(main())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"done"
    assert not closed.is_set(), "on_connection_close after a complete response"
