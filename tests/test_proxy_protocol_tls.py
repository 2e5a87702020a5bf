"""The PROXY protocol in front of qactuar's own TLS, in every process model.

A TCP balancer (HAProxy ``mode tcp`` with ``send-proxy-v2``, an AWS NLB)
passes the client's TLS through and writes a PROXY header before it. Each
test writes the header by hand on a raw socket, then does the TLS handshake
over that socket (``ssl.SSLContext.wrap_socket``, or a memory BIO where the
header and the ClientHello must leave in one ``sendall``) and asks
``proxied:app`` whom it sees.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
from typing import Any

import pytest
from proxyraw import V1, v2
from support import RawClient
from tlscerts import MODELS, Certs

QACTUAR_ARGS = ("--proxy-protocol", "--header-timeout", "2", "--log-level", "info")
WHOAMI = b"GET /whoami HTTP/1.1\r\nHost: test\r\n\r\n"
CLIENT = ["198.51.100.4", 51000]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def serve(spawn_qactuar: Any, certs: Certs, model: str, *args: str) -> Any:
    extra = ("--workers", "1") if model == "prefork" else ()
    return spawn_qactuar("proxied:app", "--model", model, *extra,
                         "--ssl-cert-path", certs.server_pem, *args)


def raw(port: int, header: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if header:
        sock.sendall(header)
    return sock


def whoami(certs: Certs, port: int, header: bytes) -> dict:
    """The header, then HTTPS on the same socket: the scope's client, server and scheme."""
    with certs.context().wrap_socket(raw(port, header), server_hostname="127.0.0.1") as sock:
        response = RawClient.over(sock).request("/whoami")
        assert response.status == 200, response.body
        return json.loads(response.body)


def whoami_in_one_send(certs: Certs, port: int, header: bytes) -> dict:
    """The header and the ClientHello in ONE sendall (the server reads both at once)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = certs.context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with raw(port) as sock:
        first = True
        for _ in range(20):
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            data = outgoing.read()
            if data:
                sock.sendall(header + data if first else data)
                first = False
            chunk = sock.recv(65536)
            assert chunk, "closed during the handshake"
            incoming.write(chunk)
        else:
            raise AssertionError("no handshake")
        tls.write(WHOAMI.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        sock.sendall(outgoing.read())
        answer = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            incoming.write(chunk) if chunk else incoming.write_eof()
            try:
                while data := tls.read(65536):
                    answer += data
            except ssl.SSLWantReadError:
                continue  # more to come
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                pass
            break  # the server closed (Connection: close)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    return json.loads(body)


def closed_unanswered(sock: socket.socket, within: float = 10) -> float:
    """Seconds until the server closed ``sock``, having written not a byte."""
    started = time.monotonic()
    with RawClient.over(sock) as conn:
        assert conn.closed_by_server(within), f"not closed, or answered: {conn.buf[:100]!r}"
    return time.monotonic() - started


@pytest.mark.parametrize("model", MODELS)
def test_header_before_tls_gives_the_client_and_https(spawn_qactuar, certs, model):
    srv = serve(spawn_qactuar, certs, model)
    expected = {"client": CLIENT, "server": ["192.0.2.1", 443], "scheme": "https"}
    assert whoami(certs, srv.port, V1) == expected
    assert whoami(certs, srv.port, v2()) == expected
    # the ClientHello arrives with the header: it is the handshake's first bytes
    assert whoami_in_one_send(certs, srv.port, v2()) == expected
    assert whoami_in_one_send(certs, srv.port, V1) == expected
    # LOCAL (the balancer's health check) keeps the socket's addresses
    local = whoami(certs, srv.port, v2(command=0, family=0, body=b""))
    assert local["client"][0] == "127.0.0.1" and local["server"] == ["127.0.0.1", srv.port]
    assert local["scheme"] == "https"


@pytest.mark.parametrize("model", MODELS)
def test_keep_alive_keeps_the_headers_client(spawn_qactuar, certs, model):
    """The fork parent relays each request of the connection: every scope has the address."""
    srv = serve(spawn_qactuar, certs, model)
    with certs.context().wrap_socket(raw(srv.port, V1), server_hostname="127.0.0.1") as sock:
        conn = RawClient.over(sock)
        for _ in range(3):
            assert json.loads(conn.request("/whoami").body)["client"] == CLIENT


@pytest.mark.parametrize("model", MODELS)
def test_bad_missing_and_truncated_headers_are_closed(spawn_qactuar, certs, model):
    srv = serve(spawn_qactuar, certs, model)
    opened = time.monotonic()
    truncated = [raw(srv.port, data) for data in (V1[:20], v2()[:-3])]
    # garbage, and TLS with no header at all: closed at once (closed by the
    # 2 s HEADER_TIMEOUT instead, the truncated ones, older, would be closed
    # too by the time they are checked below)
    for garbage in (b"\xff" * 200, b"PROXY TCP4 1.2.3.4\r\n", WHOAMI):
        assert closed_unanswered(raw(srv.port, garbage)) < 5
    with pytest.raises((ssl.SSLError, OSError)):
        certs.context().wrap_socket(raw(srv.port), server_hostname="127.0.0.1").close()
    # meanwhile the truncated ones wait, holding nobody up
    assert whoami(certs, srv.port, V1)["client"] == CLIENT
    for sock in truncated:
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # still open: nothing, not even the end, has come
        sock.setblocking(True)
    for sock in truncated:
        closed_unanswered(sock)
        # HEADER_TIMEOUT is 2 s
        assert 1.5 <= time.monotonic() - opened < 6
    if model != "prefork":  # a worker keeps the core's info lines to itself
        assert "no header in time" in srv.output()


@pytest.mark.parametrize("model", MODELS)
def test_untrusted_peer_is_closed(spawn_qactuar, certs, model):
    srv = serve(spawn_qactuar, certs, model, "--forwarded-allow-ips", "192.0.2.10",
                "--header-timeout", "30", "--ssl-handshake-timeout", "30")
    # closed as it opens, before it has sent a byte (not when a timeout runs out)
    assert closed_unanswered(raw(srv.port)) < 10
    assert closed_unanswered(raw(srv.port, V1)) < 10
    if model != "prefork":
        assert "not in FORWARDED_ALLOW_IPS" in srv.output()


@pytest.mark.parametrize("model", MODELS)
def test_a_stop_closes_a_connection_waiting_for_its_header(spawn_qactuar, certs, model):
    srv = serve(spawn_qactuar, certs, model, "--header-timeout", "30")
    waiting = raw(srv.port, V1[:20])
    assert whoami(certs, srv.port, V1)["client"] == CLIENT  # the server has accepted it
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=15) == 0
    closed_unanswered(waiting)
    assert time.monotonic() - started < 5, srv.output()
