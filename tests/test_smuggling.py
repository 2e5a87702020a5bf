"""Request smuggling and malformed input over real sockets.

Each case: the raw client gets the right status line, the server then closes
that connection, and a second, ordinary client is still served. A request
hidden in a body is never run as a request of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import RawClient, serve_qactuar, still_served

SEEN: list[tuple[str, str, bytes]] = []


async def counting(scope, receive, send):
    """Records (method, path, body) of every request it runs; answers 200."""
    if scope["type"] != "http":
        return
    body = b""
    for _ in range(10_000):
        message = await receive()
        if message["type"] != "http.request":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    SEEN.append((scope["method"], scope["path"], body))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok %d" % len(SEEN)})


@pytest.fixture(scope="module")
def server() -> Iterator:
    with serve_qactuar(counting, LIFESPAN="off") as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    SEEN.clear()


def head(fields: bytes, body: bytes = b"", method: bytes = b"POST", version: bytes = b"1.1",
         path: bytes = b"/case") -> bytes:
    return method + b" " + path + b" HTTP/" + version + b"\r\n" + fields + b"\r\n" + body


HOST = b"Host: x\r\n"

# (request bytes, status); the head of each is refused before any app runs,
# unless the case sits in the body (chunk sizes), marked by the third item.
CASES: dict[str, tuple[bytes, int, bool]] = {
    "CL with TE": (head(HOST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                        b"0\r\n\r\n"), 400, False),
    "TE with CL": (head(HOST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                        b"0\r\n\r\n"), 400, False),
    "differing CL": (head(HOST + b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
                     400, False),
    "duplicate CL": (head(HOST + b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
                     400, False),
    "CL +5": (head(HOST + b"Content-Length: +5\r\n", b"hello"), 400, False),
    "CL -1": (head(HOST + b"Content-Length: -1\r\n", b"hello"), 400, False),
    "CL 5, 5": (head(HOST + b"Content-Length: 5, 5\r\n", b"hello"), 400, False),
    "CL overflow": (head(HOST + b"Content-Length: 99999999999999999999999999\r\n", b"hello"),
                    400, False),
    "CL not a number": (head(HOST + b"Content-Length: five\r\n", b"hello"), 400, False),
    "TE gzip": (head(HOST + b"Transfer-Encoding: gzip\r\n", b"hello"), 400, False),
    "TE chunked, gzip": (head(HOST + b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
                         400, False),
    "TE xchunked": (head(HOST + b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400, False),
    "TE identity": (head(HOST + b"Transfer-Encoding: identity\r\n", b"hello"), 400, False),
    "TE repeated": (head(HOST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                         b"0\r\n\r\n"), 400, False),
    "invalid chunk size": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                b"zz\r\nhello\r\n0\r\n\r\n"), 400, True),
    "overflowing chunk size": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                    b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"), 400, True),
    "space after a bare chunk size": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                           b"5 \r\nhello\r\n0\r\n\r\n"), 400, True),
    "bare LF after a chunk extension": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                             b"5; a = b\nhello\r\n0\r\n\r\n"), 400, True),
    "CR inside a chunk extension": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                         b"5; a\r= b\r\nhello\r\n0\r\n\r\n"), 400, True),
    "chunk extension without a name": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                            b"5 ; \r\nhello\r\n0\r\n\r\n"), 400, True),
    "BWS chunk longer than its size": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                            b"3 ; a = b\r\nhelloGET / HTTP/1.1\r\n\r\n"),
                                       400, True),
    "no CRLF after chunk data": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                      b"3 ; a = b\r\nabcXY5\r\nhello\r\n0\r\n\r\n"),
                                 400, True),
    "TE gzip, chunked": (head(HOST + b"Transfer-Encoding: gzip, chunked\r\n",
                              b"5\r\nhello\r\n0\r\n\r\n"), 501, False),
    "chunk longer than its size": (head(HOST + b"Transfer-Encoding: chunked\r\n",
                                        b"3\r\nhelloGET / HTTP/1.1\r\n\r\n"), 400, True),
    "obs-fold": (head(HOST + b"X-A: b\r\n  folded\r\n", method=b"GET"), 400, False),
    "obs-fold in CL": (head(HOST + b"Content-Length:\r\n 5\r\n", b"hello"), 400, False),
    "whitespace before colon": (head(HOST + b"Content-Length : 5\r\n", b"hello"), 400, False),
    "whitespace before colon in TE": (head(HOST + b"Transfer-Encoding : chunked\r\n",
                                           b"0\r\n\r\n"), 400, False),
    "control byte in name": (head(HOST + b"X-\x01A: b\r\n", method=b"GET"), 400, False),
    "NUL in name": (head(HOST + b"X-\x00A: b\r\n", method=b"GET"), 400, False),
    "control byte in value": (head(HOST + b"X-A: b\x01c\r\n", method=b"GET"), 400, False),
    "NUL in value": (head(HOST + b"X-A: b\x00c\r\n", method=b"GET"), 400, False),
    "DEL in value": (head(HOST + b"X-A: b\x7f\r\n", method=b"GET"), 400, False),
    "CR in value": (head(HOST + b"X-A: b\rContent-Length: 5\r\n", b"hello"), 400, False),
    "invalid method": (head(HOST, method=b"G(E)T"), 400, False),
    "unknown method": (head(HOST, method=b"SMUGGLE"), 400, False),
    "missing Host": (head(b"", method=b"GET"), 400, False),
    "repeated Host": (head(HOST + b"Host: y\r\n", method=b"GET"), 400, False),
    "repeated Host in HTTP/1.0": (head(HOST + b"Host: y\r\n", method=b"GET", version=b"1.0"),
                                  400, False),
    "Host with a path": (head(b"Host: x/evil\r\n", method=b"GET"), 400, False),
    "Host with userinfo": (head(b"Host: user@x\r\n", method=b"GET"), 400, False),
    "asterisk target for GET": (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, False),
    "TE in HTTP/1.0": (head(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", version=b"1.0"),
                       400, False),
    "HTTP/2.0 request line": (head(HOST, method=b"GET", version=b"2.0"), 505, False),
    "HTTP/3.0 request line": (head(HOST, method=b"GET", version=b"3.0"), 505, False),
    "bare LF line endings": (b"GET /case HTTP/1.1\nHost: x\n\n", 400, False),
    "bare LF after a header": (b"GET /case HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400, False),
    "space in target": (b"GET /case /x HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
}


@pytest.mark.parametrize(("data", "status", "in_body"), CASES.values(), ids=CASES.keys())
def test_refused_closed_and_the_server_goes_on(server, data, status, in_body):
    with RawClient(server.port) as c:
        c.send(data)
        response = c.response()
        assert response.status_line.startswith(b"HTTP/1.1 %d " % status), response
        assert response.header(b"connection") == b"close"
        assert c.closed_by_server()
    if not in_body:
        assert SEEN == []  # no app ran for a refused head
    still_served(server.url)


@pytest.mark.parametrize(("data", "status", "in_body"), CASES.values(), ids=CASES.keys())
def test_refused_after_a_good_keep_alive_request(server, data, status, in_body):
    # the first request on the connection is answered; the bad one is refused
    with RawClient(server.port) as c:
        c.send(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().status == 200
        c.send(data)
        assert c.response().status == status
        assert c.closed_by_server()
    assert [path for _, path, _ in SEEN][:1] == ["/good"]
    still_served(server.url)


def test_bad_request_pipelined_behind_a_good_one_gets_the_good_answer_first(server):
    with RawClient(server.port) as c:
        c.send(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\n"
               + head(HOST + b"Content-Length: 1\r\nContent-Length: 2\r\n", b"ab"))
        first, second = c.response(), c.response()
        assert (first.status, second.status) == (200, 400)
        assert c.closed_by_server()
    assert [path for _, path, _ in SEEN] == ["/good"]


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        # CL.TE: a front end that uses Content-Length forwards the whole thing
        head(HOST + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"
             % (5 + len(SMUGGLED)), b"0\r\n\r\n" + SMUGGLED, path=b"/"),
        # TE.CL: a front end that uses Transfer-Encoding forwards the whole thing
        head(HOST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
             b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED), path=b"/"),
        # TE hidden from the parser by an obfuscated coding name
        head(HOST + b"Content-Length: %d\r\nTransfer-Encoding: xchunked\r\n"
             % (5 + len(SMUGGLED)), b"0\r\n\r\n" + SMUGGLED, path=b"/"),
        # TE hidden by whitespace before the colon
        head(HOST + b"Content-Length: %d\r\nTransfer-Encoding : chunked\r\n"
             % (5 + len(SMUGGLED)), b"0\r\n\r\n" + SMUGGLED, path=b"/"),
    ],
    ids=["CL.TE", "TE.CL", "TE obfuscated", "TE space before colon"],
)
def test_smuggled_request_is_never_served(server, data):
    with RawClient(server.port) as c:
        c.send(data)
        assert c.response().status == 400
        assert c.closed_by_server()
    still_served(server.url)
    assert [path for _, path, _ in SEEN] == ["/"]  # only still_served's request


def test_request_inside_a_valid_body_is_body_not_a_request(server):
    with RawClient(server.port) as c:
        c.send(head(HOST + b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED, path=b"/post"))
        assert c.response().status == 200
        c.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().body == b"ok 2"
    assert SEEN == [("POST", "/post", SMUGGLED), ("GET", "/next", b"")]


def test_chunk_extensions_with_whitespace_hide_no_request(server):
    # RFC 9112 §7.1.1 BWS around ';' and '=': the body is the chunks' data
    # only, and the request after it is the next one, not part of it
    with RawClient(server.port) as c:
        c.send(head(HOST + b"Transfer-Encoding: chunked\r\n",
                    b"5 ; a = \"x;y\" ; b\r\nhello\r\n0 ; c\r\n\r\n", path=b"/bws")
               + SMUGGLED)
        assert c.response().status == 200
        assert c.response().status == 200
    assert SEEN == [("POST", "/bws", b"hello"), ("GET", "/smuggled", b"")]
