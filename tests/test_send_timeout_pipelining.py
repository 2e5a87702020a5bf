"""SEND_TIMEOUT and paced pipelining against a running server, in every model (issue #13).

- A client that stops reading while the app streams megabytes (a tiny
  SO_RCVBUF, nothing read) is dropped after SEND_TIMEOUT: one info line with
  its address, the app's ``send()`` raises ``ClientDisconnected`` and its
  ``receive()`` says ``http.disconnect`` (``websocket.disconnect`` 1006 for a
  WebSocket), no application error; another client is served meanwhile.
  Over TLS the fork model's parent relays the response: its sweep drops it.
  A response complete at once but never read (8 MiB waiting in the write
  buffer) is dropped the same way, not kept until the client reads.
- 1,000 pipelined requests sent at once are all answered, in order; so are
  50 followed at once by the client's FIN.

The app is tests/apps/sendpipe_app.py. The time bounds are generous (the
drop comes after 1 s; the test waits up to 20 s); the timeout's precision is
tested with the clock driven by hand in tests/protocol/test_send_timeout.py.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from support import RawClient, Spawned, encode_request, read_until_closed
from tlscerts import Certs
from wsraw import RawWebSocket, handshake_request

MODELS = ["fork", "async", "prefork"]
WAIT = 20.0


def start(spawn_qactuar: Any, model: str, *args: str) -> Spawned:
    extra = ("--workers", "1") if model == "prefork" else ()
    # REQUEST_TIMEOUT off: in fork it would kill the child before SEND_TIMEOUT could act
    return spawn_qactuar("sendpipe_app:app", "--model", model, *extra, *args,
                         env={"QACTUAR_SEND_TIMEOUT": "1", "QACTUAR_REQUEST_TIMEOUT": "0"})


def not_reading(port: int) -> socket.socket:
    """A connected socket with a tiny receive buffer, which the test never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    return sock


def assert_dropped_once_without_error(output: str, stopped: str) -> None:
    assert output.count("Send timeout: ('127.0.0.1', ") == 1, output[-3000:]
    assert "read nothing for 1s; connection dropped" in output, output[-3000:]
    assert stopped in output, output[-3000:]
    for words in ("Exception in ASGI", "ERROR", "Traceback", "failed"):
        assert words not in output, output[-3000:]


def drop_a_streamed_response(server: Spawned, stalled: RawClient, other: Any) -> None:
    stalled.send(encode_request("/stream"))
    server.wait_for_log("stream started")
    # another client is served while the first one is stalled
    with other() as client:
        response = client.request("/")
        assert (response.status, response.body) == (200, b"ok")
    output = server.wait_for_log("stream stopped:", timeout=WAIT)
    raw = stalled.read_to_close(timeout=WAIT)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200]
    assert not raw.endswith(b"0\r\n\r\n")  # cut: no last chunk
    output = server.wait_for_log('"GET / HTTP/1.1" 200')
    assert_dropped_once_without_error(
        output, "stream stopped: ClientDisconnected after ")
    assert "; receive: http.disconnect" in output, output[-3000:]


@pytest.mark.parametrize("model", MODELS)
def test_a_client_that_stops_reading_is_dropped_after_send_timeout(spawn_qactuar, model):
    server = start(spawn_qactuar, model)
    with RawClient.over(not_reading(server.port)) as stalled:
        drop_a_streamed_response(server, stalled, lambda: RawClient(server.port))


def test_over_tls_the_fork_parent_drops_a_relayed_client_that_stops_reading(
        spawn_qactuar, tmp_path):
    certs = Certs(tmp_path)
    server = start(spawn_qactuar, "fork", "--ssl-cert-path", certs.server_pem)

    def tls(sock: socket.socket) -> RawClient:
        return RawClient.over(certs.context().wrap_socket(sock, server_hostname="127.0.0.1"))

    with tls(not_reading(server.port)) as stalled:
        drop_a_streamed_response(
            server, stalled,
            lambda: tls(socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)))


@pytest.mark.parametrize("model", MODELS)
def test_a_complete_response_never_read_is_dropped_after_send_timeout(spawn_qactuar, model):
    server = start(spawn_qactuar, model)
    with RawClient.over(not_reading(server.port)) as stalled:
        stalled.send(encode_request("/big"))
        server.wait_for_log("big sent")
        with RawClient(server.port) as client:
            assert client.request("/").body == b"ok"
        output = server.wait_for_log("Send timeout:", timeout=WAIT)
        raw = stalled.read_to_close(timeout=WAIT)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200]
        assert len(raw) < 128 * 65536  # cut short
    assert_dropped_once_without_error(output, "big sent")


@pytest.mark.parametrize("model", MODELS)
def test_a_websocket_client_that_stops_reading_is_dropped(spawn_qactuar, model):
    server = start(spawn_qactuar, model)
    sock = not_reading(server.port)
    sock.sendall(handshake_request("/ws", server.port))
    with RawWebSocket(sock, b"", b""):
        server.wait_for_log("ws started")
        with RawClient(server.port) as client:
            assert client.request("/").body == b"ok"
        output = server.wait_for_log("ws stopped:", timeout=WAIT)
        assert_dropped_once_without_error(
            output, "ws stopped: ClientDisconnected; receive: websocket.disconnect 1006")


@pytest.mark.parametrize("model", MODELS)
def test_a_thousand_pipelined_requests_are_answered_in_order(spawn_qactuar, model):
    server = start(spawn_qactuar, model)
    count = 1000
    with RawClient(server.port) as client:
        client.send(b"".join(encode_request(f"/p/{i}") for i in range(count)))
        answers = []
        for _ in range(count):
            response = client.response()
            answers.append((response.status, response.body))
        assert answers == [(200, b"%d" % i) for i in range(count)]
        assert client.request("/").body == b"ok"  # and the connection goes on


@pytest.mark.parametrize("model", MODELS)
def test_pipelined_requests_then_the_clients_fin_are_all_answered(spawn_qactuar, model):
    """``printf '<50 requests>' | nc -N``: the FIN is read only once every request is parsed."""
    server = start(spawn_qactuar, model)
    count = 50
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(b"".join(encode_request(f"/p/{i}") for i in range(count)))
        sock.shutdown(socket.SHUT_WR)
        raw = read_until_closed(sock, WAIT)
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert bodies == [b"%d" % i for i in range(count)], raw[-300:]


def _post(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(), len(body), body)


@pytest.mark.parametrize("model", MODELS)
def test_pipelined_posts_then_the_clients_fin_are_all_answered(spawn_qactuar, model):
    # paced parsing stops after a head whose body is still in the kept rest:
    # the FIN then finds the parser mid-body, which is not a request cut short
    server = start(spawn_qactuar, model)
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(b"".join(_post(f"/p/{i}", b"body%d" % i) for i in range(3)))
        sock.shutdown(socket.SHUT_WR)
        raw = read_until_closed(sock, WAIT)
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert bodies == [b"0", b"1", b"2"], raw[-300:]


@pytest.mark.parametrize("model", MODELS)
def test_a_stray_crlf_after_pipelined_requests_still_gets_the_keep_alive_timeout(
        spawn_qactuar, model):
    # llhttp skips a CRLF between requests: the rest then holds no request,
    # and the idle connection must still be closed at KEEP_ALIVE_TIMEOUT
    server = start(spawn_qactuar, model, "--keep-alive-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(encode_request("/p/0") + encode_request("/p/1") + b"\r\n")
        raw = read_until_closed(sock, WAIT)  # TimeoutError: held open
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2, raw[-300:]


@pytest.mark.parametrize("model", ["async", "fork"])
def test_a_client_reading_slowly_but_steadily_is_never_dropped(spawn_qactuar, model):
    # The kernel's send buffer (megabytes) drains as the client reads, long
    # before the server's own buffer shrinks: that is progress too, or a slow
    # download of a large file would be cut at SEND_TIMEOUT (here 1 s)
    server = start(spawn_qactuar, model)
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(encode_request("/stream"))
        server.wait_for_log("stream started")
        got = 0
        for _ in range(40):  # 4 s at about 160 KiB/s, four times SEND_TIMEOUT
            data = sock.recv(16384)
            assert data, f"dropped after {got} bytes"
            got += len(data)
            time.sleep(0.1)
    # the client left: the app's send() fails and it says so (the marker)
    server.wait_for_log("stream stopped")
    assert "Send timeout" not in server.output()
