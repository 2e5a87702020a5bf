"""The fork model over TLS: the parent keeps the connection and relays to a child.

Every guarantee of the fork model holds for relayed requests: a child per
request (isolation), crash 502, REQUEST_TIMEOUT 504, an app error 500 logged
once, a child dying mid-response closes the connection, background work
after the response, http.disconnect, WebSockets exempt from REQUEST_TIMEOUT,
graceful stop.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from support import RawClient, calls_with_peak_children, encode_request, fork_children, wait_until
from tlscerts import Certs, client, serve, tls_socket
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("path, status", [("/segv", 502), ("/exit", 502), ("/sleep?5", 504)])
def test_fork_a_lost_child_gets_502_or_504_over_tls(spawn_qactuar, certs, path, status):
    server = serve(spawn_qactuar, certs, "fork", "--request-timeout", "0.5",
                   "--check-process-interval", "0.05")
    with client(certs, server) as http:
        assert http.get(path).status_code == status
        assert http.get("/pid").status_code == 200  # the parent goes on
    assert "while serving" in server.output() or "REQUEST_TIMEOUT" in server.output()


@pytest.mark.parametrize("path, words", [
    ("/raise", "raised in the app"), ("/misuse", "'http.response.body' before"),
])
def test_fork_an_app_error_over_tls_is_a_500_logged_once(spawn_qactuar, certs, path, words):
    server = serve(spawn_qactuar, certs, "fork")
    with client(certs, server) as http:
        assert http.get(path).status_code == 500
        assert http.get("/pid").status_code == 200
    server.wait_for_log(words)
    assert server.output().count("Exception in ASGI application") == 1
    assert words in server.output()


def test_fork_a_child_that_leaves_its_body_unread_is_still_heard_over_tls(spawn_qactuar, certs):
    # The parent pumps the body into the socketpair while the child answers
    # and goes: a child that closed its end on unread frames reset the
    # parent's, which then lost the response the child had sent (500
    # "returned without starting a response", or a missing misuse log).
    server = serve(spawn_qactuar, certs, "fork")
    body = b"x" * (1 << 20)
    with client(certs, server) as http:
        for _ in range(20):
            response = http.post("/unread", content=body)
            assert (response.status_code, response.text) == (200, "not read")
    assert "without starting a response" not in server.output()


def test_fork_a_child_dying_mid_response_closes_the_tls_connection(spawn_qactuar, certs):
    server = serve(spawn_qactuar, certs, "fork")
    with client(certs, server) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/half")
        assert http.get("/pid").status_code == 200


def test_fork_isolation_background_work_and_disconnect_over_tls(spawn_qactuar, certs, tmp_path):
    server = serve(spawn_qactuar, certs, "fork")
    with client(certs, server) as http:
        assert http.get("/set?changed").text == "set"
        assert http.get("/get").text == "unset"  # the change died with its child
        marker = tmp_path / "background"
        assert http.get(f"/background?{marker}").text == "answered"
    # (the app opens the file, then writes: wait for the text, not the file)
    assert read_when(marker, "done after the response") == "done after the response"
    # the client leaves mid-request: the app (in its child) sees http.disconnect
    gone = tmp_path / "gone"
    sock = tls_socket(certs, server.port)
    sock.sendall(encode_request(f"/disconnect?{gone}"))
    time.sleep(0.3)  # let the request reach its child
    sock.close()
    assert read_when(gone, "disconnected") == "disconnected"


def test_fork_a_wss_child_lost_before_accept_gets_502(spawn_qactuar, certs):
    from websockets.exceptions import InvalidStatus

    server = serve(spawn_qactuar, certs, "fork")
    with pytest.raises(InvalidStatus) as refused:
        connect(f"wss://127.0.0.1:{server.port}/ws-segv", ssl=certs.context(), open_timeout=10)
    assert refused.value.response.status_code == 502


def test_fork_wss_is_exempt_from_request_timeout(spawn_qactuar, certs):
    server = serve(spawn_qactuar, certs, "fork", "--request-timeout", "0.3",
                   "--check-process-interval", "0.05")
    url = f"wss://127.0.0.1:{server.port}/ws"
    with connect(url, ssl=certs.context(), open_timeout=10, close_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["pid"] != server.proc.pid
        time.sleep(1)
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"


def test_fork_graceful_stop_closes_a_relayed_wss_with_1001(spawn_qactuar, certs):
    from websockets.exceptions import ConnectionClosed

    server = serve(spawn_qactuar, certs, "fork", "--graceful-timeout", "1")
    url = f"wss://127.0.0.1:{server.port}/ws"
    with connect(url, ssl=certs.context(), open_timeout=10, close_timeout=5) as ws:
        json.loads(ws.recv(timeout=10))
        began = time.monotonic()
        server.signal(signal.SIGTERM)
        ws.send("during the grace period")
        assert ws.recv(timeout=10) == "during the grace period"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert 0.8 < time.monotonic() - began < 5
    assert server.wait(15) == 0


def test_fork_graceful_stop_lets_tls_requests_finish(spawn_qactuar, certs):
    server = serve(spawn_qactuar, certs, "fork")
    results: list[int] = []
    started = threading.Event()

    def call() -> None:
        with client(certs, server) as http:
            started.set()
            results.append(http.get("/sleep?1").status_code)

    caller = threading.Thread(target=call)
    caller.start()
    started.wait(10)
    wait_until(lambda: fork_children(server.proc.pid), what="the request's child")
    server.signal(signal.SIGTERM)
    caller.join(15)
    assert results == [200]
    assert server.wait() == 0


def read_when(path: Any, text: str) -> str:
    """``path``'s text once it is ``text`` (AssertionError if it does not come to say it)."""
    wait_until(lambda: path.exists() and path.read_text() == text,
               what=f"{path} to say {text!r}")
    return text


def test_fork_max_processes_queues_relayed_requests_with_stats(spawn_qactuar, certs):
    server = serve(spawn_qactuar, certs, "fork", "--max-processes", "2",
                   "--gather-proc-stats", "--log-level", "debug")

    def call() -> int:
        with client(certs, server) as http:
            return int(http.get("/sleep?0.3").status_code)

    results, peak = calls_with_peak_children(server.proc.pid, call, 6)
    assert results == [200] * 6
    assert 1 <= peak <= 2
    server.wait_for_log("KiB peak RSS", count=6)  # a child is reaped just after its response
    assert server.output().count("KiB peak RSS") == 6  # GATHER_PROC_STATS, per child


_UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.mark.parametrize("model", ["fork", "async"])
@pytest.mark.parametrize("request_bytes", [
    b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", _UPGRADE,
], ids=["http", "websocket"])
def test_limit_concurrency_counts_tls_requests_arriving_together(
    spawn_qactuar, certs, model, request_bytes
):
    # Three requests reach the server in one batch of events (it is stopped
    # while they are sent): the fork model relays TLS requests, which once
    # joined its count a loop turn later, so all three passed the limit.
    server = serve(spawn_qactuar, certs, model, "--limit-concurrency", "1")
    socks = [tls_socket(certs, server.port) for _ in range(3)]
    try:
        server.signal(signal.SIGSTOP)
        try:
            for sock in socks:
                sock.sendall(request_bytes)
            time.sleep(0.2)  # the bytes are in the server's socket buffers
        finally:
            server.signal(signal.SIGCONT)
        statuses = []
        for sock in socks:
            head = RawClient.over(sock, 10).read_until(b"\r\n\r\n")
            statuses.append(int(head.split(b" ", 2)[1]))
    finally:
        for sock in socks:
            sock.close()
    ok = 101 if request_bytes is _UPGRADE else 200
    assert sorted(statuses) == [ok, 503, 503]


@pytest.mark.parametrize("model", ["fork", "async"])
@pytest.mark.parametrize("query", ["gen", "tuple"])
def test_an_enum_status_and_headers_not_in_a_list_cross_the_relay(
    spawn_qactuar, certs, model, query
):
    # marshal, the relay's wire, refuses int subclasses and generators: the
    # fork model answered 500 over TLS what every model answers 201 over TCP
    server = serve(spawn_qactuar, certs, model)
    with client(certs, server) as http:
        response = http.get("/created", params=query)
    assert (response.status_code, response.text) == (201, "made")
    assert response.headers["x-made"] == "here"
    assert "Exception" not in server.output()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_fork_a_child_does_not_hold_a_connection_still_in_its_handshake(spawn_qactuar, certs,
                                                                         loop, tmp_path):
    # A child forked while another client is still in its TLS handshake must
    # close that client's socket: else the client, dropped by the parent at
    # SSL_HANDSHAKE_TIMEOUT, sees no end of its connection until the child exits.
    server = serve(spawn_qactuar, certs, "fork", "--ssl-handshake-timeout", "1", "--loop", loop,
                   "--request-timeout", "30")
    left = tmp_path / "left"
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    # accepted after the silent one (the backlog is first in, first out), so
    # its child is forked while the silent connection is in its handshake
    held = tls_socket(certs, server.port)
    try:
        held.sendall(encode_request(f"/disconnect?{left}"))  # runs until its client leaves
        child = wait_until(lambda: fork_children(server.proc.pid), 10,
                           what="a child serving the held request")
        assert RawClient.over(silent).closed_by_server(10)
        # the parent dropped it at the handshake timeout while the child still ran
        assert set(child) <= set(fork_children(server.proc.pid)), "the child exited first"
    finally:
        held.close()
        silent.close()
    wait_until(left.exists, 10, what="the held request's child to see its client leave")
