"""Issue 13's protocol probes over raw sockets, in every process model.

A request with chunk extensions in gunicorn's corpus shape (whitespace around
``;`` and ``=``, RFC 9112 §7.1.1) is served; ``Transfer-Encoding: gzip,
chunked`` gets 501 and a close, the app never running (§6.1); an absolute-form
target's authority is the Host the app sees (§3.2.2); a CR/LF in a header name
an app passes to ``http.response.start``, ``websocket.accept`` or the denial
response never reaches the client (one check, ``qactuar.http.check_field``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import RawClient, Spawned, start_qactuar
from wsraw import handshake_request

MODELS = ["fork", "async", "prefork"]
GUNICORN_BWS = (
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5; some; parameters=stuff\r\nhello\r\n6 \t;\t blahblah; blah\r\n world\r\n0\r\n\r\n"
)


@pytest.fixture(scope="module", params=MODELS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Spawned]:
    model = request.param
    workers = ("--workers", "2") if model == "prefork" else ()
    log = Path(tmp_path_factory.mktemp(model)) / "qactuar.log"
    spawned = start_qactuar("protocol13:app", "--model", model, *workers,
                            log_path=str(log), cwd=str(Path(__file__).parent / "apps"))
    yield spawned
    spawned.stop()


def test_chunk_extensions_with_whitespace_are_served(server):
    with RawClient(server.port) as c:
        c.send(GUNICORN_BWS)
        response = c.response()
        assert (response.status, response.body) == (200, b"POST /echo host=a body=hello world")
        c.send(b"GET /echo HTTP/1.1\r\nHost: b\r\n\r\n")  # the connection goes on
        assert c.response().body == b"GET /echo host=b body="


def test_bad_chunk_size_line_is_still_refused(server):
    with RawClient(server.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3 ;x\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        response = c.response()
        assert response.status == 400
        assert c.closed_by_server()


@pytest.mark.parametrize("codings", [b"gzip, chunked", b"x-custom, chunked"])
def test_unknown_transfer_coding_gets_501_and_close(server, codings):
    with RawClient(server.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n" % codings)
        response = c.response()
        assert response.status == 501
        assert response.header(b"connection") == b"close"
        assert response.body == b"Transfer coding not implemented\n"  # not the app's echo
        assert c.closed_by_server()


def test_absolute_form_authority_is_the_host_the_app_sees(server):
    with RawClient(server.port) as c:
        c.send(b"GET http://example.org:8080/echo?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        response = c.response()
        assert (response.status, response.body) == (
            200, b"GET /echo host=example.org:8080 body=")


def test_crlf_in_a_response_header_name_never_reaches_the_client(server):
    with RawClient(server.port) as c:
        c.send(b"GET /inject HTTP/1.1\r\nHost: a\r\n\r\n")
        response = c.response()
        assert response.status == 500
        assert response.get(b"set-cookie") == [] and response.body != b"injected"


def test_crlf_in_a_websocket_accept_header_name_never_reaches_the_client(server):
    with RawClient(server.port) as c:
        c.send(handshake_request("/ws-accept", server.port))
        response = c.response()
        assert response.status == 500  # not the 101 with the field
        assert response.get(b"set-cookie") == []
        assert response.get(b"x-a") == []


def test_crlf_in_a_denial_header_name_never_reaches_the_client(server):
    with RawClient(server.port) as c:
        c.send(handshake_request("/ws-deny", server.port))
        data = c.read_to_close()
        assert b"set-cookie" not in data.lower() and b"x-a" not in data.lower()


def test_denial_with_a_bad_header_name_gets_500(server):
    with RawClient(server.port) as c:
        c.send(handshake_request("/ws-deny", server.port))
        assert c.response().status == 500
