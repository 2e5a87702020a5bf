"""HTTP/1.1 over real sockets: keep-alive, pipelining, bodies, framing, Expect.

Raw clients send exact bytes and read exact bytes (support.RawClient);
httpx plays the ordinary client. Every read has a timeout and every loop a
bound.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from apps import basic  # type: ignore[import-not-found]
from support import READ_TIMEOUT, RawClient, serve_qactuar, still_served

# --- apps -----------------------------------------------------------------------------


async def stream(scope, receive, send):
    """Streams 'hello ' and 'world' without a Content-Length; ?status=N."""
    if scope["type"] != "http":
        return
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    await send({"type": "http.response.start", "status": int(query.get("status", "200")),
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": True})
    await send({"type": "http.response.body", "body": b"world", "more_body": False})


async def whole(scope, receive, send):
    """Answers ?status=N with a whole body, and the app's own Server header for /own."""
    if scope["type"] != "http":
        return
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/own":
        headers += [(b"Server", b"mine/1.0"), (b"Date", b"Mon, 01 Jan 2001 00:00:00 GMT")]
    await send({"type": "http.response.start", "status": int(query.get("status", "200")),
                "headers": headers})
    await send({"type": "http.response.body", "body": b"body text"})


READS_BODY: list[str] = []


async def no_read(scope, receive, send):
    """Answers 200 without reading the body; /read reads it first."""
    if scope["type"] != "http":
        return
    body = b""
    if scope["path"] == "/read":
        for _ in range(10_000):
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"read:" + body})


@pytest.fixture(scope="module")
def echo_server() -> Iterator:
    with serve_qactuar(basic.echo) as srv:
        yield srv


@pytest.fixture(scope="module")
def stream_server() -> Iterator:
    with serve_qactuar(stream) as srv:
        yield srv


@pytest.fixture(scope="module")
def whole_server() -> Iterator:
    with serve_qactuar(whole) as srv:
        yield srv


# --- keep-alive -----------------------------------------------------------------------


def test_keep_alive_one_connection_serves_many_requests(echo_server):
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(limits=limits, timeout=READ_TIMEOUT) as client:
        ports = set()
        for i in range(5):
            response = client.get(echo_server.url + f"/n{i}")
            assert response.status_code == 200
            assert response.json()["path"] == f"/n{i}"
            ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
        assert len(ports) == 1


def test_keep_alive_raw_http11(echo_server):
    with RawClient(echo_server.port) as c:
        for i in range(3):
            c.send(b"GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            response = c.response()
            assert response.status == 200
            assert response.json()["path"] == f"/r{i}"
            assert response.header(b"connection") is None
        assert c.nothing_within(0.3)


def test_http11_connection_close_is_honoured(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = c.response()
        assert response.status == 200
        assert response.header(b"connection") == b"close"
        assert c.closed_by_server()


def test_http10_without_keep_alive_closes(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET /old HTTP/1.0\r\n\r\n")
        response = c.response()
        assert response.status == 200
        assert response.json()["http_version"] == "1.0"
        assert response.header(b"connection") == b"close"
        assert c.closed_by_server()


def test_http10_with_keep_alive_keeps_the_connection(echo_server):
    with RawClient(echo_server.port) as c:
        for i in range(3):
            c.send(b"GET /k%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            response = c.response()
            assert response.status == 200
            assert response.header(b"connection") == b"keep-alive"
            assert response.json()["path"] == f"/k{i}"
        assert c.nothing_within(0.3)


# --- pipelining -----------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order_with_bodies(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(
            b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
            b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nthree\r\n0\r\n\r\n"
        )
        reports = [c.response().json() for _ in range(3)]
        assert [(r["path"], r["body"]) for r in reports] == [
            ("/1", "one"), ("/2", ""), ("/3", "three")
        ]
        assert c.nothing_within(0.3)


def test_pipelined_requests_with_a_slow_first_are_still_in_order(serve):
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        if scope["path"] == "/slow":
            import asyncio
            await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    with serve(app, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [c.response().body for _ in range(2)] == [b"/slow", b"/fast"]
        # one at a time: the second app call did not start before the first ended
        assert calls == ["/slow", "/fast"]


def test_pipelined_requests_sent_in_odd_pieces(echo_server):
    data = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with RawClient(echo_server.port) as c:
        for i in range(0, len(data), 7):
            c.send(data[i : i + 7])
            time.sleep(0.002)
        first, second = c.response().json(), c.response().json()
        assert (first["path"], first["body"]) == ("/a", "hello")
        assert (second["path"], second["query_string"]) == ("/b", "q=1")


def test_many_pipelined_requests_without_reading_are_bounded(serve):
    # The client sends 5000 pipelined GETs for 16 KiB each and reads nothing.
    # Once the kernel buffers are full the server must stop running requests
    # (and stop reading) instead of queueing responses in memory: at most a few
    # hundred fit in the socket buffers. (Unbounded, it runs all 5000 and holds
    # 80 MB for this one client.)
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 16384})

    count = 5000
    with serve(app, LIFESPAN="off", GRACEFUL_TIMEOUT=0.5) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        sock.connect(("127.0.0.1", srv.port))
        try:
            sock.sendall(b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n" * count)
            deadline = time.monotonic() + 1.5
            last = -1
            while time.monotonic() < deadline and len(seen) != last:
                last = len(seen)
                time.sleep(0.3)
            assert len(seen) < count // 2, f"{len(seen)} of {count} requests run unread"
            still_served(srv.url)
        finally:
            sock.close()


# --- request bodies -------------------------------------------------------------------


def test_content_length_body_reaches_the_app(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        report = c.response().json()
        assert report["method"] == "POST" and report["body"] == "hello world"


def test_chunked_body_with_extensions_and_trailers_reaches_the_app(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n1;a;b=\"c\"\r\n \r\n5\r\nworld\r\n"
            b"0\r\nX-Trailer: t\r\n\r\n"
            b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        report = c.response().json()
        assert report["body"] == "hello world"
        assert ["x-trailer", "t"] not in report["headers"]
        assert c.response().json()["path"] == "/after"


def test_body_sent_slowly_arrives_whole(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        for piece in (b"01234", b"567", b"89"):
            time.sleep(0.05)
            c.send(piece)
        assert c.response().json()["body"] == "0123456789"


def test_large_body_reaches_the_app_in_several_events(echo_server):
    body = bytes(range(256)) * 4096  # 1 MiB
    response = httpx.post(echo_server.url + "/big", content=body, timeout=10)
    report = response.json()
    assert report["body"].encode("latin-1") == body


# --- response framing seen by a raw client --------------------------------------------


def test_streaming_response_is_chunked_to_http11(stream_server):
    with RawClient(stream_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = c.response()
        assert response.header(b"transfer-encoding") == b"chunked"
        assert response.header(b"content-length") is None
        assert response.body == b"hello world"
        assert response.raw_body == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
        # still keep-alive
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().body == b"hello world"


def test_streaming_response_is_close_delimited_to_http10(stream_server):
    with RawClient(stream_server.port) as c:
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = c.response()
        assert response.header(b"transfer-encoding") is None
        assert response.header(b"content-length") is None
        assert response.header(b"connection") == b"close"
        assert response.body == b"hello world"
        assert c.eof


def test_head_gets_headers_and_no_body(whole_server):
    with RawClient(whole_server.port) as c:
        c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.response(method=b"HEAD")
        assert head.status == 200
        assert head.header(b"content-type") == b"text/plain"
        get = c.response()
        # had HEAD's response carried a body, this would read it as a status line
        assert get.status == 200 and get.body == b"body text"


def test_head_on_a_streaming_app_gets_no_body(stream_server):
    with RawClient(stream_server.port) as c:
        c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.response(method=b"HEAD")
        assert head.header(b"transfer-encoding") is None
        assert c.response().body == b"hello world"


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("app_server", ["whole_server", "stream_server"])
def test_204_and_304_have_no_body_even_if_the_app_sends_one(status, app_server, request):
    srv = request.getfixturevalue(app_server)
    with RawClient(srv.port) as c:
        c.send(b"GET /?status=%d HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
               % status)
        first = c.response()
        assert first.status == status
        assert first.header(b"transfer-encoding") is None
        second = c.response()
        assert second.status == 200  # the dropped body did not leak into the stream
        assert b"text" in second.body or second.body == b"hello world"


# --- Expect: 100-continue -------------------------------------------------------------


def test_expect_100_continue_when_the_app_reads_the_body(serve):
    with serve(no_read, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\n")
        c._fill(time.monotonic() + READ_TIMEOUT)
        assert c.buf == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.buf = b""
        c.send(b"hello")
        response = c.response()
        assert (response.status, response.body) == (200, b"read:hello")
        assert response.interim == []


def test_no_100_continue_when_the_app_answers_without_reading(serve):
    with serve(no_read, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"POST /ignore HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\n")
        response = c.response()
        assert response.interim == []
        assert (response.status, response.body) == (200, b"read:")


# --- Date and Server ------------------------------------------------------------------


def test_date_and_server_headers_by_default(whole_server):
    with RawClient(whole_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = c.response()
        assert response.header(b"server") == b"qactuar"
        date = response.header(b"date")
        assert date is not None and date.endswith(b" GMT")


def test_date_and_server_headers_can_be_turned_off(serve):
    with serve(whole, LIFESPAN="off", DATE_HEADER=False, SERVER_HEADER=False) as srv:
        with RawClient(srv.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = c.response()
            assert response.header(b"server") is None
            assert response.header(b"date") is None
            assert response.body == b"body text"


def test_apps_own_server_and_date_are_not_duplicated(whole_server):
    with RawClient(whole_server.port) as c:
        c.send(b"GET /own HTTP/1.1\r\nHost: x\r\n\r\n")
        response = c.response()
        assert response.get(b"server") == [b"mine/1.0"]
        assert response.get(b"date") == [b"Mon, 01 Jan 2001 00:00:00 GMT"]


# --- scope ----------------------------------------------------------------------------


def test_header_names_are_lower_cased_in_the_scope(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHOST: x\r\nX-Mixed-Case: Value\r\nx-mixed-case: two\r\n\r\n")
        headers = c.response().json()["headers"]
        assert headers == [["host", "x"], ["x-mixed-case", "Value"], ["x-mixed-case", "two"]]


def test_raw_path_as_sent_and_path_percent_decoded(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET /caf%C3%A9/a%2Fb%20c?x=%20y HTTP/1.1\r\nHost: x\r\n\r\n")
        report = c.response().json()
        assert report["raw_path"] == "/caf%C3%A9/a%2Fb%20c"
        assert report["path"] == "/café/a/b c"
        assert report["query_string"] == "x=%20y"


def test_absolute_form_target_reaches_the_app_as_a_path(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET http://example.com/abs/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        report = c.response().json()
        assert (report["path"], report["raw_path"], report["query_string"]) == (
            "/abs/p", "/abs/p", "q=1")


# --- what the HTTP-layer fixes look like from a client ------------------------------------


def test_bytes_after_a_closing_request_do_not_corrupt_a_close_delimited_body(stream_server):
    # An HTTP/1.0 client's stray bytes after its request must not turn into
    # a 400 appended to the close-delimited body it is reading.
    with RawClient(stream_server.port) as c:
        c.send(b"GET / HTTP/1.0\r\n\r\nstray bytes\r\n\r\n")
        response = c.response()
        assert response.body == b"hello world"


def test_pipelined_request_after_connection_close_gets_one_answer(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        response = c.response()
        assert (response.status, response.json()["path"]) == (200, "/first")
        assert c.closed_by_server()
        assert c.buf == b""  # no 400 for the ignored second request


def test_trailing_whitespace_in_header_values_does_not_reach_the_app(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x  \r\nX-Token: abc \t \r\n\r\n")
        assert c.response().json()["headers"] == [["host", "x"], ["x-token", "abc"]]


def test_fragment_sent_by_a_client_does_not_reach_path_or_query(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET /page?a=1#section HTTP/1.1\r\nHost: x\r\n\r\n")
        report = c.response().json()
        assert (report["path"], report["raw_path"], report["query_string"]) == (
            "/page", "/page", "a=1")


def test_h2c_upgrade_post_body_reaches_the_app(echo_server):
    # curl --http2 -d data http://... asks for h2c with a body; qactuar does
    # not switch, so the request must be served as HTTP/1.1 with its body.
    with RawClient(echo_server.port) as c:
        c.send(b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
               b"Content-Length: 9\r\n\r\npost data")
        response = c.response()
        assert response.status == 200
        assert response.json()["body"] == "post data"


def test_http30_request_line_gets_505(echo_server):
    with RawClient(echo_server.port) as c:
        c.send(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n")
        assert c.response().status == 505
        assert c.closed_by_server()


async def no_content_with_length(scope, receive, send):
    await send({"type": "http.response.start", "status": 204,
                "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_204_never_carries_content_length(serve):
    with serve(no_content_with_length, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(2):
            response = c.response()
            assert response.status == 204
            assert response.header(b"content-length") is None


async def bad_headers(scope, receive, send):
    value = {"/crlf": b"a\r\nX-Injected: 1", "/ctl": b"a\x01b"}[scope["path"]]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", value)]})
    await send({"type": "http.response.body", "body": b"never"})


@pytest.mark.parametrize("path", [b"/crlf", b"/ctl"])
def test_invalid_response_header_value_gives_500_not_the_bytes(serve, path):
    with serve(bad_headers, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        response = c.response()
        assert response.status == 500
        assert response.header(b"x-injected") is None
        assert response.header(b"x-a") is None
        still_served_app = httpx.get(srv.url + "/crlf", timeout=READ_TIMEOUT)
        assert still_served_app.status_code == 500


async def overrun(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"too long"})


def test_body_overrunning_content_length_never_reaches_the_client_as_a_response(serve):
    with serve(overrun, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            response = c.response()
        except EOFError:
            response = None  # closed without a response: acceptable
        if response is not None:
            assert response.status == 500
        assert b"too long" not in c.buf
        assert c.closed_by_server()


def test_expect_100_continue_is_ignored_for_http10(serve):
    with serve(no_read, LIFESPAN="off") as srv, RawClient(srv.port) as c:
        c.send(b"POST /read HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert c.nothing_within(0.3)
        c.send(b"ok")
        response = c.response()
        assert response.interim == []
        assert response.body == b"read:ok"


def test_answer_before_the_body_is_read_says_connection_close(serve):
    # An app that answers without reading a large body: the connection cannot
    # carry another request, and the client must be told so in the response,
    # not find out by a reset on its next request.
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too big"})

    with serve(app, LIFESPAN="off") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
            sock.sendall(head + b"z" * 1000)
            data = RawClient.over(sock).read_until(b"too big")
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 413")
        assert b"connection: close" in head
