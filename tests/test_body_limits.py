"""Hostile request bodies cost what they send, never a process (#13), end to end.

- fork: the parent reads a body whole (memory up to BODY_BUFFER_BYTES, then
  an unlinked temporary file) before it forks, so stalled bodies hold no
  child; 100-continue is the parent's; pipelining and keep-alive go on.
- fork: MAX_WEBSOCKETS caps WebSocket children below MAX_PROCESSES; over it a
  handshake gets 503.
- every model: BODY_TIMEOUT answers 408 to a body that stops coming.

Events, not sleeps: a stalled client is known to be read by the parent once
its ``100 Continue`` arrived; the test app prints a marker when its
``receive()`` says http.disconnect.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from typing import Any

import pytest
from support import RawClient, fd_targets, fork_children, wait_until
from tlscerts import Certs, tls_socket
from wsraw import RawWebSocket, handshake_request

APP = "bodies:app"
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def post(path: str, length: int, *, expect: bool = False, body: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (path.encode(), length)
    if expect:
        head += b"Expect: 100-continue\r\n"
    return head + b"\r\n" + body


def spooled_files(pid: int) -> list[str]:
    """The unlinked temporary files ``pid`` holds open."""
    return [target for target in fd_targets(pid) if target.endswith("(deleted)")]


def assert_no_app_heard_a_disconnect(server: Any, tls: Certs | None = None) -> None:
    """No app printed BODY-DISCONNECT, by the time a later request's access line is out."""
    sock = tls_socket(tls, server.port) if tls is not None else None
    with RawClient.over(sock) if sock is not None else RawClient(server.port) as client:
        client.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.response().status == 200
    output = server.wait_for_log('"GET /after HTTP/1.1" 200')
    assert "BODY-DISCONNECT" not in output


# -- fork: the body is the parent's -------------------------------------------------


def test_fork_stalled_bodies_hold_no_child_and_a_get_is_answered(spawn_qactuar: Any) -> None:
    # REQUEST_TIMEOUT off: a child held by a stalled body would hold for ever
    server = spawn_qactuar(APP, "--model", "fork", "--max-processes", "2",
                           "--request-timeout", "0", "--body-timeout", "0")
    stalled = []
    try:
        for _ in range(4):
            client = RawClient(server.port)
            client.send(post("/echo", 10, expect=True))
            # the parent answers 100 Continue as it starts reading the body
            assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            client.send(b"abc")
            stalled.append(client)
        assert fork_children(server.pid) == []  # four bodies pending, not one child
        with RawClient(server.port) as getter:
            getter.send(GET)
            response = getter.response()
            assert response.status == 200 and response.body.startswith(b"ok ")
        for client in stalled:  # the stalled bodies complete: each is served
            client.send(b"defghij")
            response = client.response()
            assert response.status == 200
            assert response.json()["size"] == 10
    finally:
        for client in stalled:
            client.close()


def test_fork_a_large_body_is_spooled_to_an_unlinked_file_then_read_in_chunks(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--body-buffer-bytes", "65536")
    body = os.urandom(1 << 20)
    with RawClient(server.port) as client:
        client.send(post("/echo", len(body) + 1, body=body))
        # the parent holds the body's tail in a temporary file, removed from the start
        wait_until(lambda: spooled_files(server.pid), what="no spooled file")
        assert fork_children(server.pid) == []
        client.send(b"!")
        report = client.response().json()
    assert report["size"] == len(body) + 1
    assert report["sha256"] == hashlib.sha256(body + b"!").hexdigest()
    assert report["events"] >= (len(body) - 65536) // 65536  # more_body until the last
    assert report["largest"] == 65536  # the pieces the app gets: 64 KiB at most
    # the parent closed its copy once the child had it
    wait_until(lambda: not spooled_files(server.pid), what="the parent kept the file")


def test_fork_a_body_held_in_memory_is_handed_out_in_pieces_of_64_kib(
    spawn_qactuar: Any,
) -> None:
    # a large buffer: the body stays in memory, in pieces as large as a read
    server = spawn_qactuar(APP, "--model", "fork", "--body-buffer-bytes", "1048576")
    body = os.urandom(700_000)
    with RawClient(server.port) as client:
        client.send(post("/echo", len(body), body=body))
        report = client.response().json()
    assert (report["size"], report["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert report["largest"] == 65536


def test_fork_by_default_a_body_over_64_kib_is_spooled_to_a_file(spawn_qactuar: Any) -> None:
    # what stalled uploads cost the parent's memory: 64 KiB each at most
    server = spawn_qactuar(APP, "--model", "fork")
    with RawClient(server.port) as client:
        client.send(post("/echo", 70_001, body=b"x" * 70_000))
        wait_until(lambda: spooled_files(server.pid), what="no spooled file")
        client.send(b"!")
        assert client.response().json()["size"] == 70_001


def test_fork_a_body_then_pipelined_requests_then_keep_alive(spawn_qactuar: Any) -> None:
    server = spawn_qactuar(APP, "--model", "fork")
    with RawClient(server.port) as client:
        client.send(post("/echo", 5, body=b"hello")
                    + b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"3\r\nabc\r\n0\r\n\r\n" + GET)
        first, second, third = client.response(), client.response(), client.response()
        assert (first.json()["size"], second.json()["size"]) == (5, 3)
        assert third.status == 200 and third.body.startswith(b"ok ")
        served = {first.json()["pid"], second.json()["pid"], int(third.body.split()[1])}
        assert server.pid not in served  # each in a child
        client.send(post("/echo", 2, body=b"hi"))  # the parent took the connection back
        fourth = client.response()
        assert fourth.json()["size"] == 2 and fourth.json()["pid"] not in served


def test_fork_expect_100_continue_is_answered_by_the_parent_even_for_an_app_that_never_reads(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork")
    with RawClient(server.port) as client:
        client.send(post("/", 4, expect=True))  # "/" answers without reading
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"body")
        response = client.response()
        assert response.status == 200 and response.interim == []


def test_fork_no_100_continue_for_a_body_that_came_with_its_head(spawn_qactuar: Any) -> None:
    server = spawn_qactuar(APP, "--model", "fork")
    with RawClient(server.port) as client:
        client.send(post("/echo", 4, expect=True, body=b"body"))  # one write, one read
        response = client.response()
        assert response.status == 200 and response.json()["size"] == 4
        assert response.interim == []


def test_fork_max_body_bytes_is_the_parents_413_with_no_child(spawn_qactuar: Any) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--max-body-bytes", "8",
                           "--gather-proc-stats", "--log-level", "debug")
    with RawClient(server.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Expect: 100-continue\r\n\r\n")
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"5\r\nabcde\r\n5\r\nfghij\r\n")  # over MAX_BODY_BYTES
        assert client.response().status == 413
    with RawClient(server.port) as client:
        client.send(GET)
        pid = int(client.response().body.split()[1])
    server.wait_for_log(f"child {pid}:")  # the GET's child was reaped and logged
    assert server.output().count(" KiB peak RSS") == 1  # and it was the only child


# -- fork: WebSocket children are capped --------------------------------------------


def test_fork_websockets_over_max_websockets_get_503_and_plain_requests_still_run(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--max-processes", "4",
                           "--max-websockets", "2", "--request-timeout", "0")
    sockets = [RawWebSocket.open(server.port, "/ws") for _ in range(2)]
    try:
        with RawClient(server.port) as third:
            third.send(handshake_request("/ws", server.port))
            refused = third.response()
            assert refused.status == 503
            assert refused.header("retry-after") == b"1"
            assert b"MAX_WEBSOCKETS" in refused.body
        with RawClient(server.port) as getter:
            getter.send(GET)
            assert getter.response().status == 200
        # the two WebSockets hold their children, the GET's is gone
        wait_until(lambda: len(fork_children(server.pid)) == 2, what="two children")
    finally:
        for ws in sockets:
            ws.sock.close()
    wait_until(lambda: fork_children(server.pid) == [], what="WebSocket children stayed")
    RawWebSocket.open(server.port, "/ws").sock.close()  # room again


def test_fork_over_tls_relayed_websockets_count_against_max_websockets(
    spawn_qactuar: Any, tmp_path: Any,
) -> None:
    certs = Certs(tmp_path)
    server = spawn_qactuar(APP, "--model", "fork", "--ssl-cert-path", certs.server_pem,
                           "--max-processes", "2", "--max-websockets", "1")
    with RawClient.over(tls_socket(certs, server.port)) as first:
        first.send(handshake_request("/ws", server.port))
        assert first.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        with RawClient.over(tls_socket(certs, server.port)) as second:
            second.send(handshake_request("/ws", server.port))
            refused = second.response()
            assert refused.status == 503 and b"MAX_WEBSOCKETS" in refused.body
        with RawClient.over(tls_socket(certs, server.port)) as getter:
            getter.send(GET)
            assert getter.response().status == 200


def test_max_websockets_over_max_processes_is_a_config_error(
    spawn_qactuar: Any, tmp_path: Any,
) -> None:
    config = tmp_path / "qactuar_config.json"
    config.write_text(json.dumps({"MAX_PROCESSES": 4, "MAX_WEBSOCKETS": 4}))
    server = spawn_qactuar(APP, "--config", str(config), wait=False)
    assert server.wait(20) == 2
    assert (f"qactuar: config MAX_WEBSOCKETS=4 (from {config}): must be below "
            "MAX_PROCESSES (4)") in server.output()


@pytest.mark.parametrize("model", ["async", "prefork"])
def test_max_websockets_means_nothing_outside_fork_and_is_not_checked(
    spawn_qactuar: Any, model: str,
) -> None:
    extra = ["--workers", "1"] if model == "prefork" else []
    server = spawn_qactuar(APP, "--model", model, *extra, "--max-websockets", "600")
    RawWebSocket.open(server.port, "/ws").sock.close()  # started, and serves WebSockets


def test_fork_with_one_process_refuses_every_websocket_and_serves_requests(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--max-processes", "1")
    with RawClient(server.port) as client:
        client.send(handshake_request("/ws", server.port))
        refused = client.response()
        assert refused.status == 503 and b"MAX_WEBSOCKETS" in refused.body
    with RawClient(server.port) as getter:
        getter.send(GET)
        assert getter.response().status == 200


def test_fork_limit_concurrency_leaves_out_bodies_still_coming_then_applies(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--limit-concurrency", "1",
                           "--max-processes", "2", "--request-timeout", "0")
    with RawClient(server.port) as uploader:
        uploader.send(post("/echo", 10, expect=True))
        assert uploader.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        uploader.send(b"abc")  # a slow upload: not in flight yet
        with RawClient(server.port) as getter:
            getter.send(GET)
            assert getter.response().status == 200
        wait_until(lambda: fork_children(server.pid) == [], what="the GET's child to go")
        ws = RawWebSocket.open(server.port, "/ws")  # in flight for its whole life
        try:
            uploader.send(b"defghij")  # complete: over the limit now
            refused = uploader.response()
            assert refused.status == 503 and refused.header("retry-after") == b"1"
        finally:
            ws.sock.close()


def test_fork_an_upload_still_coming_when_a_stop_begins_gets_503_at_once(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--graceful-timeout", "30")
    with RawClient(server.port) as client:
        client.send(post("/echo", 10, expect=True))
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"abc")
        server.proc.send_signal(signal.SIGTERM)
        # no app ran for it: answered now, not dropped after GRACEFUL_TIMEOUT
        response = client.response()
        assert response.status == 503 and response.header("connection") == b"close"
        assert response.header("retry-after") == b"1"
    assert server.proc.wait(20) == 0


def test_fork_a_body_the_parent_cannot_store_gets_500_and_is_logged(spawn_qactuar: Any) -> None:
    # files over 100 kB cannot be written (EFBIG), as on a full disk
    server = spawn_qactuar(APP, "--model", "fork", "--body-buffer-bytes", "1024",
                           launcher="low_fds", env={"NOFILE": "1024", "FSIZE": "100000"})
    with RawClient(server.port) as client:
        client.send(post("/echo", 200_000, body=b"x" * 150_000))
        response = client.response()
        assert response.status == 500 and response.header("connection") == b"close"
    server.wait_for_log("cannot store the request body from ")
    assert "File too large" in server.output()
    wait_until(lambda: not spooled_files(server.pid), what="the parent kept the file")
    with RawClient(server.port) as client:  # the server goes on
        client.send(post("/echo", 5, body=b"hello"))
        assert client.response().json()["size"] == 5


# -- BODY_TIMEOUT, every model ------------------------------------------------------

BODY_TIMEOUT = 1.0


@pytest.mark.parametrize("model", ["async", "prefork", "fork"])
def test_a_stalled_body_gets_408_after_body_timeout(spawn_qactuar: Any, model: str) -> None:
    extra = ["--workers", "1"] if model == "prefork" else []
    server = spawn_qactuar(APP, "--model", model, *extra, "--body-timeout", str(BODY_TIMEOUT))
    with RawClient(server.port) as client:
        client.send(post("/read", 10, expect=True))
        if model == "fork":  # the parent reads the body: it says so at once
            assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sent = time.monotonic()
        client.send(b"ab")
        response = client.response()  # within READ_TIMEOUT (5 s)
        waited = time.monotonic() - sent
        assert response.status == 408 and response.body == b"Request body timeout\n"
        assert response.header("connection") == b"close"
        assert client.read_to_close() == b""  # and the connection closed
    # the deadline is set from the server's coarse clock, which lags by up to
    # one sweep interval (a quarter of the timeout)
    assert waited >= BODY_TIMEOUT * 0.75 - 0.05
    if model != "fork":  # the app's receive() said http.disconnect
        server.wait_for_log("BODY-DISCONNECT /read")
    else:  # no child ever ran: nothing of the app was heard
        assert_no_app_heard_a_disconnect(server)


STALL_TIMEOUT = 2.0


def test_fork_a_stalled_body_pipelined_behind_a_whole_one_holds_no_child_408_from_parent(
    spawn_qactuar: Any,
) -> None:
    # one child slot: a child waiting for the second body would hold it
    server = spawn_qactuar(APP, "--model", "fork", "--max-processes", "1",
                           "--body-timeout", str(STALL_TIMEOUT), "--request-timeout", "0")
    with RawClient(server.port) as client:
        client.send(post("/echo", 2, body=b"ok") + post("/read", 10, body=b"ab"))
        first = client.response()
        assert first.status == 200 and first.json()["size"] == 2
        served_while_stalled(server)
        second = client.response()
        assert second.status == 408 and second.body == b"Request body timeout\n"
        assert client.read_to_close() == b""
    assert_answered_before(server, "408 Request body timeout")
    assert_no_app_heard_a_disconnect(server)  # no app ever ran for it


def test_fork_a_partial_head_pipelined_behind_a_whole_request_holds_no_child(
    spawn_qactuar: Any,
) -> None:
    server = spawn_qactuar(APP, "--model", "fork", "--max-processes", "1",
                           "--header-timeout", str(STALL_TIMEOUT), "--request-timeout", "0")
    with RawClient(server.port) as client:
        client.send(GET + b"GET / HTTP/1.1\r\nHo")
        assert client.response().status == 200
        served_while_stalled(server)
        # HEADER_TIMEOUT, kept by the parent (not the keep-alive timeout)
        second = client.response()
        assert second.status == 408 and second.body == b"Request header timeout\n"
    assert_answered_before(server, "408 Request header timeout")


def served_while_stalled(server: Any) -> None:
    """Another client's GET is answered (with one child slot: only if no child is held)."""
    with RawClient(server.port) as other:
        other.send(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.response().status == 200


def assert_answered_before(server: Any, timeout_line: str) -> None:
    """The other GET was served before the stalled request timed out (a held child: after)."""
    server.wait_for_log(timeout_line)
    output = server.wait_for_log('"GET /other HTTP/1.1" 200')
    assert output.index('"GET /other HTTP/1.1" 200') < output.index(timeout_line)


def test_fork_over_tls_a_stalled_body_gets_408_from_the_parent(
    spawn_qactuar: Any, tmp_path: Any,
) -> None:
    certs = Certs(tmp_path)
    server = spawn_qactuar(APP, "--model", "fork", "--ssl-cert-path", certs.server_pem,
                           "--body-timeout", str(BODY_TIMEOUT), "--request-timeout", "0")
    with RawClient.over(tls_socket(certs, server.port)) as client:
        client.send(post("/read", 10, expect=True, body=b""))
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"ab")
        assert fork_children(server.pid) == []
        response = client.response()
        assert response.status == 408
    assert_no_app_heard_a_disconnect(server, tls=certs)
