"""What app code and clients do to one request, in every process model (issue #13).

- ``sys.exit()`` and ``KeyboardInterrupt`` raised by the app fail their
  request alone: a 500 (or a cut response, or 1011 on a WebSocket), logged
  once with the traceback; concurrent requests and the process go on, and a
  real SIGINT still stops the server.
- A client leaving mid-stream is not an application error; an app returning
  early on a live connection still is.
- A client that half-closes after its request (``shutdown(SHUT_WR)``, as
  ``nc -N`` does) still gets its answer, fast or slow.
- Request data in log lines is escaped: no forged line, no terminal escape.

The app is tests/apps/hardening_app.py.
"""

from __future__ import annotations

import signal
import socket
from typing import Any

import pytest
from support import RawClient, Spawned, encode_request, wait_until
from tlscerts import Certs, tls_socket
from wsraw import CLOSE, RawWebSocket

MODELS = ["fork", "async", "prefork"]


def start(spawn_qactuar: Any, tmp_path: Any, model: str, *args: str) -> Spawned:
    extra = ("--workers", "1") if model == "prefork" else ()
    return spawn_qactuar("hardening_app:app", "--model", model, *extra, *args,
                         env={"HARDENING_DIR": str(tmp_path)})


def close_code(frame_payload: bytes) -> int:
    return int.from_bytes(frame_payload[:2], "big")


def assert_no_process_died(server: Spawned) -> None:
    output = server.output()
    assert server.proc.poll() is None, output[-3000:]
    for words in ("died:", "left on its own", "while serving", "failed"):
        assert words not in output, output[-3000:]


@pytest.mark.parametrize("model", MODELS)
def test_sys_exit_and_keyboard_interrupt_fail_only_their_request(
        spawn_qactuar, tmp_path, model):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port) as held:
        held.send(encode_request("/hold"))
        wait_until(lambda: (tmp_path / "held").exists(), what="/hold in flight")
        for path in ("/exit", "/interrupt"):
            with RawClient(server.port) as client:
                response = client.request(path)
                assert response.status == 500, (path, response)
                assert client.closed_by_server()
        with RawClient(server.port) as client:
            # begun, then sys.exit(): the response is cut (no last chunk), the connection closed
            client.send(encode_request("/exit-mid"))
            raw = client.read_to_close()
            assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw
            assert raw.endswith(b"5\r\nbegun\r\n"), raw
        (tmp_path / "release").touch()
        response = held.response()
        assert (response.status, response.body) == (200, b"released")
    with RawClient(server.port) as client:
        assert client.request("/fast").body == b"fast"
    output = server.wait_for_log('"GET /fast HTTP/1.1" 200')
    assert output.count("Exception in ASGI application for GET /") == 3, output[-3000:]
    assert output.count("SystemExit: 3") == 2, output[-3000:]
    assert output.count("\nKeyboardInterrupt") == 1, output[-3000:]
    assert_no_process_died(server)
    # a real Ctrl-C still stops the server, as it always did
    server.signal(signal.SIGINT)
    assert server.wait() == 0


@pytest.mark.parametrize("model", MODELS)
def test_sys_exit_over_tls_is_a_500_logged_once(spawn_qactuar, tmp_path, model):
    """Over TLS the fork model relays to a child: the child's failure is still the request's."""
    certs = Certs(tmp_path)
    server = start(spawn_qactuar, tmp_path, model, "--ssl-cert-path", certs.server_pem)
    for path in ("/exit", "/interrupt", "/fast"):
        with RawClient.over(tls_socket(certs, server.port)) as client:
            response = client.request(path)
            assert response.status == (200 if path == "/fast" else 500), (path, response)
    output = server.wait_for_log('"GET /fast HTTP/1.1" 200')
    assert output.count("Exception in ASGI application for GET /") == 2, output[-3000:]
    assert_no_process_died(server)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path", ["/ws-exit", "/ws-interrupt"])
def test_sys_exit_in_a_websocket_app_closes_it_with_1011(spawn_qactuar, tmp_path, model, path):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port) as held:
        held.send(encode_request("/hold"))
        wait_until(lambda: (tmp_path / "held").exists(), what="/hold in flight")
        with RawWebSocket.open(server.port, path, timeout=10) as ws:
            frame = ws.read_close(timeout=10)
            assert frame.opcode == CLOSE
            assert close_code(frame.payload) == 1011
        (tmp_path / "release").touch()
        assert held.response().body == b"released"
    with RawClient(server.port) as client:
        assert client.request("/fast").body == b"fast"
    output = server.wait_for_log('"GET /fast HTTP/1.1" 200')
    assert output.count(f"Exception in ASGI websocket application for {path}") == 1, output
    assert_no_process_died(server)


@pytest.mark.parametrize("model", MODELS)
def test_a_client_leaving_mid_stream_is_not_an_app_error(spawn_qactuar, tmp_path, model):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port) as client:
        client.send(encode_request("/stream"))
        for _ in range(3):  # three chunks in: the stream is under way
            client.read_until(b"x" * 1024)
    server.wait_for_log("stream stopped")
    # the access line is written after the error line would have been
    output = server.wait_for_log('"GET /stream HTTP/1.1" 200')
    assert "incomplete" not in output, output[-3000:]
    assert "ERROR" not in output, output[-3000:]


@pytest.mark.parametrize("model", MODELS)
def test_an_app_returning_early_on_a_live_connection_is_an_error(
        spawn_qactuar, tmp_path, model):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port) as client:
        client.send(encode_request("/early"))
        raw = client.read_to_close()
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"5\r\nearly\r\n"), raw
    server.wait_for_log("ASGI app returned with its response body incomplete for GET /early")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path, body", [("/fast", b"fast"), ("/slow", b"slow")])
def test_a_half_closed_client_gets_its_answer(spawn_qactuar, tmp_path, model, path, body):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port, timeout=10) as client:
        client.send(encode_request(path))
        client.sock.shutdown(socket.SHUT_WR)  # the client's FIN, as nc -N sends it
        response = client.response()
        assert (response.status, response.body) == (200, body)
        assert client.closed_by_server()


@pytest.mark.parametrize("model", MODELS)
def test_pipelined_requests_then_a_fin_are_all_answered(spawn_qactuar, tmp_path, model):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port, timeout=10) as client:
        client.send(encode_request("/slow") + encode_request("/fast"))
        client.sock.shutdown(socket.SHUT_WR)
        assert client.response().body == b"slow"
        last = client.response()
        assert (last.body, last.header("connection")) == (b"fast", b"close")
        assert client.closed_by_server()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("how", [socket.SHUT_WR, socket.SHUT_RDWR])
def test_a_long_poll_hears_its_client_leave_or_half_close(spawn_qactuar, tmp_path, model, how):
    """Tornado's long poll (and Django's disconnect watcher) learn of a FIN as before."""
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port) as client:
        client.send(encode_request("/listen"))
        client.sock.shutdown(how)
        server.wait_for_log("heard disconnect")
        assert client.closed_by_server()


FORGED_PATH = "/x%0d%0aFORGED%1b[2J%e2%80%a8"


@pytest.mark.parametrize("model", MODELS)
def test_request_data_in_log_lines_is_escaped(spawn_qactuar, tmp_path, model):
    server = start(spawn_qactuar, tmp_path, model)
    with RawClient(server.port) as client:
        assert client.request(FORGED_PATH).status == 500
    with RawWebSocket.open(server.port, FORGED_PATH, timeout=10) as ws:
        # the close frame leaves after the error is logged
        assert close_code(ws.read_close(timeout=10).payload) == 1011
    with RawClient(server.port) as client:
        assert client.request("/fast").body == b"fast"
    server.wait_for_log('"GET /fast HTTP/1.1" 200')
    with open(server.log_path, "rb") as log:
        output = log.read()
    escaped = b"/x\\r\\nFORGED\\x1b[2J\\u2028"
    assert output.count(b"Exception in ASGI application for GET " + escaped + b"\n") == 1
    assert output.count(b"Exception in ASGI websocket application for " + escaped + b"\n") == 1
    assert b"\x1b" not in output
    assert "\u2028".encode() not in output
    assert not any(line.startswith(b"FORGED") for line in output.splitlines())


def test_printable_escapes_every_control_character_and_keeps_the_rest():
    from qactuar.logs import printable

    assert printable("/caf\u00e9 d\u00e9j\u00e0/?a=1") == "/caf\u00e9 d\u00e9j\u00e0/?a=1"
    text = "".join(chr(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028))
    escaped = printable(text)
    assert escaped.isprintable() and escaped.isascii()
    assert escaped.startswith("\\x00\\x01") and "\\t\\n\\x0b\\x0c\\r" in escaped
    assert "\\x1b" in escaped
    assert escaped.endswith("\\x9b\\x9c\\x9d\\x9e\\x9f\\u2028")
