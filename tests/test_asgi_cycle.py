"""The ASGI 3 http cycle (issue 3, item 3): scope, receive, send, errors, back-pressure."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from apps import basic  # type: ignore[import-not-found]
from support import RawClient, read_until_closed, wait_until

# -- scope ---------------------------------------------------------------------


def test_scope_has_every_key_the_spec_lists(serve):
    seen: list[dict[str, Any]] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        seen.append(dict(scope))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as srv:
        with srv.connect() as sock:
            sock.sendall(b"GET /caf%C3%A9/x?a=1&b=%20 HTTP/1.1\r\nHost: t\r\n"
                         b"X-Custom-Header: Yes\r\nX-Dup: 1\r\nAccept: */*\r\nX-Dup: 2\r\n"
                         b"Connection: close\r\n\r\n")
            status = RawClient.over(sock).response().status
            client_port = sock.getsockname()[1]
    assert status == 204
    scope = seen[0]
    for key in ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
                "query_string", "root_path", "headers", "client", "server", "state"):
        assert key in scope, key
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"].get("spec_version", "2.0").startswith("2.")
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/x"
    assert scope["raw_path"] == b"/caf%C3%A9/x"
    assert scope["query_string"] == b"a=1&b=%20"
    assert scope["root_path"] == ""
    assert (b"x-custom-header", b"Yes") in [tuple(h) for h in scope["headers"]]
    assert all(isinstance(n, bytes) and n == n.lower() for n, _ in scope["headers"])
    # repeated fields are kept, in order, and not merged
    assert [v for n, v in scope["headers"] if n == b"x-dup"] == [b"1", b"2"]
    assert tuple(scope["client"]) == ("127.0.0.1", client_port)
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)
    assert isinstance(scope["state"], dict)


def test_http10_and_root_path_in_scope(serve):
    with serve(basic.echo, ROOT_PATH="/prefix") as srv:
        with RawClient(srv.port) as client:
            client.send(b"GET /x HTTP/1.0\r\n\r\n")
            response = client.response()
    report = response.json()
    assert response.status == 200
    assert report["http_version"] == "1.0"
    assert report["root_path"] == "/prefix"
    assert report["path"] == "/prefix/x"


# -- receive -------------------------------------------------------------------


def test_large_body_arrives_as_several_request_events(serve):
    body = bytes(range(256)) * 4096  # 1 MiB
    with serve(basic.echo) as srv:
        response = httpx.post(srv.url + "/upload", content=body, timeout=10)
    report = response.json()
    assert response.status_code == 200
    assert report["body"].encode("latin-1") == body
    assert report["body_events"] > 1


def test_chunked_body_streams_with_more_body(serve):
    events: list[tuple[int, bool]] = []
    first_chunk = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            events.append((len(message.get("body", b"")), message.get("more_body", False)))
            first_chunk.set()
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % sum(n for n, _ in events)})

    with serve(app) as srv, srv.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n5\r\nhello\r\n")
        assert first_chunk.wait(5)  # the app has "hello" before the rest is sent
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        response = RawClient.over(sock).response()
        status, data = response.status, response.body
    assert status == 200
    assert data == b"11"
    assert events[0] == (5, True)
    assert len(events) >= 2
    assert all(more for _, more in events[:-1])
    assert events[-1][1] is False


def test_disconnect_is_delivered_while_the_app_is_running(serve):
    received: list[dict[str, Any]] = []
    send_error: list[BaseException] = []
    waiting = threading.Event()
    #: whether the second receive() was still waiting after the loop went round
    still_waiting: list[bool] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        received.append(await receive())  # the (empty) request body
        pending = asyncio.ensure_future(receive())  # blocks until the client goes
        for _ in range(10):
            await asyncio.sleep(0)
        still_waiting.append(not pending.done())
        waiting.set()
        received.append(await asyncio.wait_for(pending, 10))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"too late"})
        except OSError as exc:  # the spec: send() after disconnect raises an OSError
            send_error.append(exc)

    with serve(app) as srv:
        sock = srv.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert waiting.wait(5)
        assert still_waiting == [True]
        sock.close()
        wait_until(lambda: len(received) == 2, what="the app's receive() to return http.disconnect")
        wait_until(lambda: send_error, what="send() after the disconnect to raise")
    assert received[0]["type"] == "http.request"
    assert received[1] == {"type": "http.disconnect"}
    assert isinstance(send_error[0], OSError)


def test_a_cancelled_receive_does_not_disturb_another(serve):
    # Starlette's Request.is_disconnected() calls receive() in a cancelled scope
    # while another task may be waiting in receive() for http.disconnect.
    outcome: list[Any] = []
    waiting = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()  # the whole (empty) body

        async def listen() -> None:
            try:
                outcome.append(await asyncio.wait_for(receive(), 10))
            except BaseException as exc:
                outcome.append(exc)
                raise

        listener = asyncio.create_task(listen())
        for _ in range(5):
            await asyncio.sleep(0)  # the listener is waiting in receive()
        peek = asyncio.create_task(receive())
        await asyncio.sleep(0)
        peek.cancel()
        for _ in range(5):
            await asyncio.sleep(0)  # the cancellation is done
        assert peek.cancelled() and not outcome
        waiting.set()
        await asyncio.wait([listener], timeout=10)

    with serve(app) as srv:
        sock = srv.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert waiting.wait(5)
        sock.close()
        wait_until(lambda: outcome, what="the listener's receive() to return")
    assert outcome == [{"type": "http.disconnect"}]


def test_disconnect_during_the_body_upload(serve):
    received: list[dict[str, Any]] = []
    done = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            for _ in range(100):
                message = await asyncio.wait_for(receive(), 10)
                received.append(message)
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
        finally:
            done.set()

    with serve(app) as srv:
        sock = srv.connect()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"a" * 100)
        wait_until(lambda: received, what="the app to receive the first 100 bytes")
        sock.close()
        assert done.wait(5)
    assert received[0] == {"type": "http.request", "body": b"a" * 100, "more_body": True}
    assert received[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in received) == 100


# -- send() misuse ---------------------------------------------------------------


def _misuse_app(kind: str, errors: list[BaseException], done: threading.Event) -> Any:
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        start = {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"text/plain")]}
        try:
            if kind == "body-before-start":
                await send({"type": "http.response.body", "body": b"x"})
            elif kind == "start-twice":
                await send(start)
                await send(start)
            elif kind == "body-after-complete":
                await send(start)
                await send({"type": "http.response.body", "body": b"whole"})
                await send({"type": "http.response.body", "body": b"extra"})
            elif kind == "unknown-type":
                await send({"type": "http.response.nonsense"})
        except Exception as exc:
            errors.append(exc)
        finally:
            done.set()
        if kind == "body-after-complete":
            return
        if kind != "start-twice":
            await send(start)
        await send({"type": "http.response.body", "body": b"recovered"})

    return app


@pytest.mark.parametrize(
    "kind", ["body-before-start", "start-twice", "body-after-complete", "unknown-type"]
)
def test_send_misuse_raises(serve, kind):
    errors: list[BaseException] = []
    done = threading.Event()
    with serve(_misuse_app(kind, errors, done)) as srv:
        response = httpx.get(srv.url + "/", timeout=5)
        assert done.wait(5)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], RuntimeError)
    assert response.status_code == 200
    if kind == "body-after-complete":
        assert response.text == "whole"
    else:
        assert response.text == "recovered"


# -- application errors --------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def qt_exception_records():
    logger = logging.getLogger("qt_exception")
    handler = _Collect()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_exception_before_start_gives_500_and_traceback(serve, qt_exception_records):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        raise ZeroDivisionError("boom before start")

    with serve(app) as srv:
        response = httpx.get(srv.url + "/explode", timeout=5)
        second = httpx.get(srv.url + "/again", timeout=5)
    assert response.status_code == 500
    assert "boom" not in response.text  # no internals leak to the client
    assert second.status_code == 500  # the server goes on
    records = [r for r in qt_exception_records if r.exc_info]
    assert records, "no qt_exception record with a traceback"
    text = logging.Formatter().format(records[0])
    assert "ZeroDivisionError: boom before start" in text
    assert "Traceback" in text
    assert "/explode" in text


def test_exception_after_start_closes_without_complete_body(serve, qt_exception_records):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after start")

    with serve(app, KEEP_ALIVE_TIMEOUT=60) as srv:  # only a close ends the read
        # raw() reads until the server closes (TimeoutError if it leaves it open)
        data = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    assert b"\r\ntransfer-encoding: chunked\r\n" in head.lower() + b"\r\n", head
    assert body == b"7\r\npartial\r\n"  # no terminating chunk: the client sees it cut
    assert any("boom after start" in logging.Formatter().format(r)
               for r in qt_exception_records)


def test_exception_after_start_with_content_length_is_cut_short(serve):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        raise ValueError("boom")

    with serve(app, KEEP_ALIVE_TIMEOUT=60) as srv:  # only a close ends the read
        with pytest.raises(httpx.RemoteProtocolError, match="received 10 bytes, expected 100"):
            httpx.get(srv.url + "/", timeout=5)
        # the same on the wire: the head, 10 bytes, the end of the connection
        data = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    assert b"\r\ncontent-length: 100\r\n" in head.lower() + b"\r\n", head
    assert body == b"x" * 10


def test_app_returning_mid_body_closes_the_connection(serve, qt_exception_records):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})

    with serve(app, KEEP_ALIVE_TIMEOUT=60) as srv:  # only a close ends the read
        # raw() reads until the server closes (TimeoutError if it leaves it open)
        data = srv.raw(b"GET /half HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    assert b"\r\ntransfer-encoding: chunked\r\n" in head.lower() + b"\r\n", head
    assert body == b"4\r\nhalf\r\n"  # no terminating chunk
    assert any("/half" in r.getMessage() for r in qt_exception_records)


def test_app_returning_without_response_gives_500(serve):
    async def app(scope, receive, send):
        return None

    with serve(app) as srv:
        response = httpx.get(srv.url + "/", timeout=5)
        ok = httpx.get(srv.url + "/", timeout=5)
    assert response.status_code == 500
    assert ok.status_code == 500


# -- back-pressure -----------------------------------------------------------------


def test_send_blocks_while_client_does_not_read(serve):
    chunk = b"x" * 65536
    total_chunks = 1024  # 64 MiB if nothing held the app back
    sent = [0]
    finished = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (len(chunk) * total_chunks))]})
        for _ in range(total_chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent[0] += 1
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    with serve(app) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", srv.port))
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            # until the app's count stands still for 0.5 s (the exact rule, that
            # send() waits while the transport is over its high-water mark, is
            # tests/protocol/test_flow_control.py's)
            stalled_at, since = 0, time.monotonic()
            deadline = since + 20
            while time.monotonic() < deadline and (
                stalled_at == 0 or time.monotonic() - since < 0.5
            ):
                if sent[0] != stalled_at:
                    stalled_at, since = sent[0], time.monotonic()
                time.sleep(0.02)
            assert stalled_at * len(chunk) < 16 * 1024 * 1024, "the app kept sending"
            assert not finished.is_set()
            buffered = sum(c.transport.get_write_buffer_size()
                           for c in list(srv.server.state.connections) if c.transport)
            assert buffered < 4 * 1024 * 1024
            received = len(read_until_closed(sock, timeout=20))
        finally:
            sock.close()
        assert finished.wait(5)
    assert sent[0] == total_chunks
    assert received > len(chunk) * total_chunks


def test_reading_pauses_while_the_app_leaves_the_body_unread(serve):
    total = 32 * 1024 * 1024
    may_read = threading.Event()
    got = [0]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        for _ in range(1000):
            if may_read.is_set():
                break
            await asyncio.sleep(0.01)
        while True:
            message = await receive()
            got[0] += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % got[0]})

    with serve(app) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(0.2)
        sock.connect(("127.0.0.1", srv.port))
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % total)
            piece = b"y" * 65536
            pushed = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and pushed < total:
                try:
                    pushed += sock.send(piece[: total - pushed])
                except TimeoutError:
                    pass
            assert pushed < 16 * 1024 * 1024, "the server read a body the app did not want"
            may_read.set()
            sock.settimeout(10)
            while pushed < total:
                pushed += sock.send(piece[: total - pushed])
            response = RawClient.over(sock, timeout=10).response()
            status, body = response.status, response.body
        finally:
            may_read.set()
            sock.close()
    assert status == 200
    assert body == b"%d" % total
