"""Limits and timeouts over real sockets, each followed by a second client served.

URL length (414), header section size and header count (431), body size (413,
off by default), the header timeout (408 or a close), the idle keep-alive
timeout, REQUEST_TIMEOUT (fork model), and slow clients that must never hold
up others.

The rules of HEADER_TIMEOUT and KEEP_ALIVE_TIMEOUT (which one applies when,
to the second, a trickling head, a busy keep-alive client, a slow app) are
tested with a clock driven by hand in tests/protocol/test_http_timeouts.py,
and REQUEST_TIMEOUT's in tests/protocol/test_request_timeout.py. The
end-to-end tests here show that the real sweep runs them, with bounds that
hold on a loaded machine (the timeout plus ``MARGIN``).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support import RawClient, exchange, read_until_closed, serve_qactuar, still_served

TIMEOUT = 0.5  # HEADER_TIMEOUT and KEEP_ALIVE_TIMEOUT of the ``timed`` server
MARGIN = 2.5  # what an end-to-end timeout may take beyond its setting


async def echo_body(scope, receive, send):
    """Answers with the request body, as it came."""
    if scope["type"] != "http":
        return
    chunks = []
    for _ in range(1_000_000):
        message = await receive()
        if message["type"] != "http.request":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


LIMITS = dict(
    MAX_URL_BYTES=100,
    MAX_HEADER_BYTES=1024,
    MAX_HEADER_COUNT=10,
    MAX_BODY_BYTES=100,
    # long enough that only the size limits under test refuse a slow sender
    HEADER_TIMEOUT=60,
    KEEP_ALIVE_TIMEOUT=60,
)


@pytest.fixture(scope="module")
def limited() -> Iterator:
    with serve_qactuar(echo_body, LIFESPAN="off", **LIMITS) as srv:
        yield srv


@pytest.fixture(scope="module")
def timed() -> Iterator:
    with serve_qactuar(echo_body, LIFESPAN="off", HEADER_TIMEOUT=TIMEOUT,
                         KEEP_ALIVE_TIMEOUT=TIMEOUT) as srv:
        yield srv


@pytest.fixture(scope="module")
def default() -> Iterator:
    with serve_qactuar(echo_body, LIFESPAN="off") as srv:
        yield srv


def refused_with(srv, data: bytes, status: int) -> None:
    with RawClient(srv.port) as c:
        c.send(data)
        response = c.response()
        assert response.status == status, response
        assert response.header(b"connection") == b"close"
        assert c.closed_by_server()
    still_served(srv.url)


def send_until_answered(sock: socket.socket, pieces, pause: float = 0.005,
                        limit: float = 5.0) -> int:
    """Send ``pieces`` one by one until the server answers; return bytes sent."""
    sent = 0
    deadline = time.monotonic() + limit
    for piece in pieces:
        if time.monotonic() > deadline:
            break
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(piece)
        except OSError:  # the server answered and closed meanwhile
            break
        sent += len(piece)
        time.sleep(pause)
    return sent


# --- URL ----------------------------------------------------------------------------------


def test_url_at_the_limit_is_served(limited):
    with RawClient(limited.port) as c:
        c.send(b"GET /" + b"a" * 99 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().status == 200


def test_url_too_long_gets_414(limited):
    refused_with(limited, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def test_url_too_long_with_query_gets_414(limited):
    refused_with(limited, b"GET /?" + b"q" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def test_endless_url_gets_414_before_the_line_ends(limited):
    with RawClient(limited.port) as c:
        sent = send_until_answered(c.sock, [b"GET /"] + [b"a" * 10] * 1000)
        assert sent < 1000
        assert c.response().status == 414
        assert c.closed_by_server()
    still_served(limited.url)


# --- header section -----------------------------------------------------------------------------


def test_header_section_at_the_limit_is_served(limited):
    fields = b"Host: x\r\nX-Pad: " + b"p" * 900 + b"\r\n"
    with RawClient(limited.port) as c:
        c.send(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
        assert c.response().status == 200


def test_one_huge_header_gets_431(limited):
    refused_with(limited, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 2000 + b"\r\n\r\n", 431)


def test_large_header_section_in_few_headers_gets_431(limited):
    fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(6))
    refused_with(limited, b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n", 431)


def test_many_headers_sent_slowly_in_pieces_get_431_before_the_head_ends(limited):
    # each piece is small and the head never ends: the size limit (431, not
    # the header timeout's 408) stops it, well before the client is done
    fields = [b"X-%03d: %s\r\n" % (i, b"v" * 40) for i in range(200)]
    with RawClient(limited.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sent = send_until_answered(c.sock, fields, pause=0.002)
        assert sent < 2048
        response = c.response()
        assert response.status == 431
        assert c.closed_by_server()
    still_served(limited.url)


def test_one_huge_header_trickling_in_gets_431(limited):
    with RawClient(limited.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = send_until_answered(c.sock, [b"v" * 50] * 100, pause=0.002)
        assert sent < 2048
        assert c.response().status == 431
        assert c.closed_by_server()
    still_served(limited.url)


def test_header_count_at_the_limit_is_served(limited):
    fields = b"Host: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(9))
    with RawClient(limited.port) as c:
        c.send(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
        assert c.response().status == 200


def test_too_many_headers_get_431(limited):
    fields = b"Host: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10))
    refused_with(limited, b"GET / HTTP/1.1\r\n" + fields + b"\r\n", 431)


# --- body ---------------------------------------------------------------------------------


def test_body_at_the_limit_is_served(limited):
    with RawClient(limited.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"b" * 100)
        response = c.response()
        assert (response.status, response.body) == (200, b"b" * 100)


def test_body_over_the_limit_by_content_length_gets_413_without_sending_it(limited):
    # the head alone is refused: the client need not send the body at all
    refused_with(limited, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413)


def test_body_over_the_limit_by_content_length_with_the_body_gets_413(limited):
    refused_with(
        limited, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" + b"b" * 500, 413
    )


def test_expect_100_continue_over_the_limit_gets_413_and_no_100(limited):
    with RawClient(limited.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: 101\r\n\r\n")
        response = c.response()
        assert response.interim == []
        assert response.status == 413
        assert c.closed_by_server()


def test_chunked_body_over_the_limit_gets_413(limited):
    with RawClient(limited.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = send_until_answered(c.sock, [b"20\r\n" + b"c" * 32 + b"\r\n"] * 100, pause=0.002)
        assert sent < 1000
        assert c.response().status == 413
        assert c.closed_by_server()
    still_served(limited.url)


def test_chunked_body_over_the_limit_sent_at_once_gets_413(limited):
    body = b"40\r\n" + b"c" * 64 + b"\r\n" + b"40\r\n" + b"c" * 64 + b"\r\n0\r\n\r\n"
    refused_with(limited, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + body, 413)


def test_endless_trailer_gets_431(limited):
    # trailers are part of the message's fields: they are bounded like the head
    with RawClient(limited.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\nX-Trailer: ")
        sent = send_until_answered(c.sock, [b"t" * 100] * 500, pause=0.002)
        assert sent < 4096
        assert c.response().status == 431
        assert c.closed_by_server()
    still_served(limited.url)


def test_no_body_limit_by_default_5_mib_echoed_whole(default):
    body = bytes(range(256)) * (5 * 4096)
    assert len(body) == 5 * 1024 * 1024
    response = httpx.post(default.url + "/", content=body, timeout=20)
    assert response.status_code == 200
    assert response.content == body


def test_large_upload_over_the_limit_sees_the_413(limited):
    # a client that sends its whole (too large) body without waiting, as
    # curl -d @file does, must still be able to read the 413
    with RawClient(limited.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
        send_until_answered(c.sock, [b"u" * 65536] * 61, pause=0)
        assert c.response().status == 413
    still_served(limited.url)


@pytest.mark.parametrize("model", ["fork", "async"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_upload_over_max_body_bytes_reads_its_413(spawn_qactuar, model, framing):
    # A client that sends its whole body before it reads (curl -d @file)
    # must get the 413, not a reset under its upload. With Content-Length
    # the head is refused; chunked, the body's first bytes over the limit
    # (in the fork model by the child, which reads the body).
    srv = spawn_qactuar("tls_app:app", "--model", model, "--max-body-bytes", "1000")
    if framing == "chunked":
        head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        body = b"10000\r\n" + b"u" * 65536 + b"\r\n"
        body = body * 61 + b"0\r\n\r\n"
    else:
        head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n"
        body = b"u" * 4_000_000
    for _ in range(3):
        answer = exchange(srv.port, head + body, timeout=10)  # as curl -d @file
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert httpx.post(srv.url + "/upload", content=b"small", timeout=10).json()["size"] == 5


# --- timeouts -----------------------------------------------------------------------------


def test_half_a_head_gets_408_and_a_close_after_the_header_timeout(timed):
    with RawClient(timed.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
        started = time.monotonic()
        response = c.response(timeout=TIMEOUT + MARGIN + 2)
        elapsed = time.monotonic() - started
        assert response.status == 408
        assert response.header(b"connection") == b"close"
        assert c.closed_by_server()
        assert TIMEOUT / 2 <= elapsed <= TIMEOUT + MARGIN  # the sweep runs 4x per timeout
    still_served(timed.url)


def test_a_client_that_sends_nothing_is_closed_after_the_header_timeout(timed):
    with RawClient(timed.port) as c:
        started = time.monotonic()
        assert c.closed_by_server(TIMEOUT + MARGIN + 2)
        elapsed = time.monotonic() - started
        assert TIMEOUT / 2 <= elapsed <= TIMEOUT + MARGIN
        assert c.buf == b""  # closed without a response: there was no request
    still_served(timed.url)


def test_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(timed):
    with RawClient(timed.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().status == 200
        started = time.monotonic()
        assert c.closed_by_server(TIMEOUT + MARGIN + 2)
        elapsed = time.monotonic() - started
        assert TIMEOUT / 2 <= elapsed <= TIMEOUT + MARGIN
        assert c.buf == b""


def test_request_timeout_after_bytes_were_sent_closes_the_connection(spawn_qactuar):
    # fork model: the child sent a head and a chunk, then hangs; once it is
    # killed the client sees the response cut (no last chunk) and the end of
    # the connection, not a 504 after the 200 (README, REQUEST_TIMEOUT)
    srv = spawn_qactuar("forky:app", "--model", "fork", "--request-timeout", "0.5",
                        "--check-process-interval", "0.1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET /halfsleep?60 HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        data = read_until_closed(sock, timeout=0.5 + MARGIN + 5)  # TimeoutError if it hangs
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert data.endswith(b"\r\n\r\n7\r\npartial\r\n"), data  # cut after the chunk
    assert data.count(b"HTTP/1.1 ") == 1
    assert 0.45 <= elapsed <= 0.5 + MARGIN
    srv.wait_for_log("killed after REQUEST_TIMEOUT")
    assert httpx.get(srv.url + "/pid", timeout=10).status_code == 200


def test_slow_clients_never_hold_up_others(serve):
    # 50 connections trickle a head one byte at a time (never finishing in
    # the test's time); meanwhile ordinary requests are served at once. A
    # server they held up would answer only at their HEADER_TIMEOUT (30 s):
    # the bound is far below that, and far above an answer on a loaded machine.
    head = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Trickle: " + b"t" * 1000
    with serve(echo_body, LIFESPAN="off", HEADER_TIMEOUT=30) as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                 for _ in range(50)]
        stop = threading.Event()
        trickling = threading.Event()

        def trickle() -> None:
            for i in range(len(head)):
                for sock in socks:
                    if stop.is_set():
                        return
                    try:
                        sock.send(head[i : i + 1])
                    except OSError:
                        return
                if i == 20:
                    trickling.set()
                stop.wait(0.01)

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            assert trickling.wait(10)
            with httpx.Client(timeout=10) as client:
                for _ in range(5):
                    started = time.monotonic()
                    response = client.post(srv.url + "/fast", content=b"quick")
                    assert response.status_code == 200 and response.content == b"quick"
                    assert time.monotonic() - started < 5
            assert thread.is_alive()  # the slow clients were still trickling throughout
        finally:
            stop.set()
            thread.join(5)
            for sock in socks:
                sock.close()
