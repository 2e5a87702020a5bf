"""PROXY protocol v1 and v2 with hand-built headers, in every process model.

The server runs as a process (``--proxy-protocol``); each connection sends
its header by hand over a raw socket. The fork model matters most: its
parent reads the header, and the child that serves the request (and the
parent again, for the next request on the connection) must keep the
addresses it gave.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from proxyraw import V1, v2, v2_ipv6
from support import RawClient, model_args

QACTUAR_ARGS = ("--proxy-protocol", "--header-timeout", "1",
                "--log-level", "info")
MODELS = ["fork", "async", "prefork"]

WHOAMI = b"GET /whoami HTTP/1.1\r\nHost: test\r\n\r\n"


def exchange(port: int, data: bytes) -> RawClient:
    conn = RawClient(port, 5)
    conn.send(data)
    return conn


def whoami(conn: RawClient, request: bytes = WHOAMI) -> dict:
    if request:
        conn.sock.sendall(request)
    response = conn.response()
    assert response.status == 200, response.body
    return json.loads(response.body)


def closed_without_answer(conn: RawClient, within: float = 5) -> float:
    """Seconds until the server closed ``conn``; it must not have written a byte."""
    started = time.monotonic()
    with conn:
        assert conn.closed_by_server(within), f"not closed, or answered: {conn.buf[:100]!r}"
    return time.monotonic() - started


@pytest.mark.parametrize("model", MODELS)
def test_valid_headers_give_the_client_and_server(spawn_qactuar, model):
    srv = spawn_qactuar(*model_args(model), "proxied:app")
    with exchange(srv.port, V1 + WHOAMI).sock as sock:
        conn = RawClient.over(sock)
        first = whoami(conn, b"")
        assert first == {"client": ["198.51.100.4", 51000], "server": ["192.0.2.1", 443],
                         "scheme": "http"}
        # the next request on the connection (the fork parent took it back)
        assert whoami(conn) == first
    # a request the fork model's child reads itself (sent once the child answered
    # 100 Continue): its scope is built in the child, which must keep the addresses
    expect = (b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\n\r\n")
    with exchange(srv.port, V1 + expect).sock as sock:
        conn = RawClient.over(sock)
        assert conn.response(interim=True).status == 100
        sock.sendall(b"hello" + WHOAMI)
        assert json.loads(conn.response().body)["size"] == 5
        assert whoami(conn, b"")["client"] == ["198.51.100.4", 51000]
    # the header alone first, the request later; v2 over IPv4 with a TLV
    with exchange(srv.port, v2(tlv=b"\x04\x00\x01x")).sock as sock:
        assert whoami(RawClient.over(sock))["client"] == ["198.51.100.4", 51000]
    # v2 over IPv6, a byte at a time
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        for i in range(len(v2_ipv6())):
            sock.sendall(v2_ipv6()[i : i + 1])
        got = whoami(RawClient.over(sock))
        assert got["client"] == ["2001:db8::7", 40000] and got["server"] == ["2001:db8::1", 8443]
    # LOCAL (a balancer's health check) and UNKNOWN keep the socket's addresses
    for header in (v2(command=0, family=0, body=b""), b"PROXY UNKNOWN\r\n"):
        with exchange(srv.port, header + WHOAMI).sock as sock:
            got = whoami(RawClient.over(sock), b"")
            assert got["client"][0] == "127.0.0.1" and got["server"] == ["127.0.0.1", srv.port]


@pytest.mark.parametrize("model", MODELS)
def test_bad_truncated_and_missing_headers_close_only_that_connection(spawn_qactuar, model):
    # HEADER_TIMEOUT 2 s: the server's clock is coarse (a quarter of the
    # timeout), so a truncated header is closed 1.5 to 2.5 s after it came
    srv = spawn_qactuar(*model_args(model), "--header-timeout", "2", "proxied:app")
    opened = time.monotonic()
    truncated = [exchange(srv.port, data) for data in (V1[:20], v2()[:15], v2()[:-3])]
    for garbage in (WHOAMI, b"PROXY TCP4 198.51.100.4 192.0.2.1 51000\r\n",
                    b"PROXY TCP4 198.51.100.4 192.0.2.1 1 2 3\r\n" + WHOAMI,
                    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12, b"\xff" * 200):
        # at once: closed by the 2 s HEADER_TIMEOUT instead, the truncated
        # ones, older, would be closed too by the time they are checked below
        assert closed_without_answer(exchange(srv.port, garbage)) < 5
    # meanwhile the truncated ones wait, holding nobody up
    with exchange(srv.port, V1 + WHOAMI).sock as sock:
        assert whoami(RawClient.over(sock), b"")["client"] == ["198.51.100.4", 51000]
    for conn in truncated:
        conn.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            conn.sock.recv(1)  # still open: nothing, not even the end, has come
        conn.sock.setblocking(True)
    for conn in truncated:
        closed_without_answer(conn)
        assert 1.2 <= time.monotonic() - opened < 6
    if model != "prefork":  # a worker keeps the core's info lines to itself
        assert "PROXY protocol from" in srv.output()


@pytest.mark.parametrize("model", MODELS)
def test_untrusted_peer_is_closed(spawn_qactuar, model):
    srv = spawn_qactuar(*model_args(model), "--forwarded-allow-ips", "192.0.2.10",
                        "--header-timeout", "30", "proxied:app")
    # at once, not when HEADER_TIMEOUT runs out
    assert closed_without_answer(exchange(srv.port, V1 + WHOAMI)) < 10
    if model != "prefork":
        assert "not in FORWARDED_ALLOW_IPS" in srv.output()


def test_proxy_headers_after_a_proxy_header_and_tls(spawn_qactuar):
    """Through a TCP balancer the HTTP stream is the client's: its X-Forwarded-For is forged."""
    srv = spawn_qactuar("--model", "async", "proxied:app")
    forged = b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    with exchange(srv.port, V1 + forged).sock as sock:
        assert whoami(RawClient.over(sock), b"")["client"] == ["198.51.100.4", 51000]
    # a v2 header saying the client spoke TLS to the balancer: https
    ssl_tlv = b"\x20\x00\x05\x01\x00\x00\x00\x00"
    with exchange(srv.port, v2(tlv=ssl_tlv) + WHOAMI).sock as sock:
        assert whoami(RawClient.over(sock), b"")["scheme"] == "https"
    # unless the header names a trusted proxy (an HTTP proxy behind the balancer)
    trusted = b"PROXY TCP4 127.0.0.1 192.0.2.1 51000 443\r\n"
    with exchange(srv.port, trusted + forged).sock as sock:
        assert whoami(RawClient.over(sock), b"")["client"] == ["6.6.6.6", 0]
