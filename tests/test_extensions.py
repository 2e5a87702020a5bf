"""qactuar's ASGI extensions, the incomplete handshake served as HTTP, the bridge's use of
them and its process-model warning: each in every model (fork, async, prefork, and fork
over TLS, where the parent relays the ASGI messages to a child).

Apps: tests/apps/ext_app.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from support import RawClient, Spawned
from tlscerts import Certs, tls_socket
from websockets.sync.client import ClientConnection, connect
from wsraw import CLOSE, PING, PONG, TEXT, RawWebSocket, close_payload, handshake_request

MODELS = ["fork", "async", "prefork", "fork-tls"]
WARNING = "process model"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


class Target:
    """A spawned server, spoken to over TCP or TLS as its model says."""

    def __init__(self, server: Spawned, certs: Certs | None) -> None:
        self.server = server
        self.certs = certs

    def sock(self) -> socket.socket:
        if self.certs is not None:
            return tls_socket(self.certs, self.server.port)
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=10)

    def exchange(self, request: bytes) -> bytes:
        """Everything the server sends until it closes the connection."""
        with RawClient.over(self.sock(), timeout=10) as client:
            client.send(request)
            return client.read_to_close()

    def raw_websocket(self, path: str) -> RawWebSocket:
        sock = self.sock()
        client = RawClient.over(sock, timeout=10)
        client.send(handshake_request(path, self.server.port))
        head = client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        return RawWebSocket(sock, head, client.buf)

    def websocket(self, path: str) -> ClientConnection:
        scheme = "wss" if self.certs is not None else "ws"
        url = f"{scheme}://127.0.0.1:{self.server.port}{path}"
        ssl = self.certs.context() if self.certs is not None else None
        return connect(url, ssl=ssl, open_timeout=10, close_timeout=5)


@pytest.fixture
def start(spawn_qactuar: Callable[..., Spawned], certs: Certs) -> Callable[[str, str], Target]:
    def run(model: str, app: str, *settings: str) -> Target:
        args = [app, "--model", model.removesuffix("-tls"), *settings]
        if model == "prefork":
            args += ["--workers", "1"]
        if model.endswith("-tls"):
            args += ["--ssl-cert-path", certs.server_pem]
        return Target(spawn_qactuar(*args), certs if model.endswith("-tls") else None)

    return run


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: t", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def status_line(response: bytes) -> bytes:
    return response.partition(b"\r\n")[0]


def body(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("model", MODELS)
def test_reason_phrase_and_status_up_to_999(start, model):
    target = start(model, "ext_app:app")
    response = target.exchange(get("/reason?status=682&reason=Bar+Baz"))
    assert status_line(response) == b"HTTP/1.1 682 Bar Baz"
    assert body(response) == b"ok"
    response = target.exchange(get("/reason?status=404&reason=Gone%20fishing%20%E9&bytes=1"))
    assert status_line(response) == b"HTTP/1.1 404 Gone fishing \xe9"
    # refused as a bad header field is: 500, and the error is logged
    for bad in ("status=200&reason=OK%0D%0AX-Injected:+1", "status=200&reason=%00",
                "status=1000&reason=Big", "status=99&reason=Small"):
        response = target.exchange(get("/reason?" + bad))
        assert status_line(response) == b"HTTP/1.1 500 Internal Server Error", bad
        assert b"x-injected" not in response.lower()
    target.server.wait_for_log("Invalid reason phrase", count=2)
    target.server.wait_for_log("Invalid response status", count=2)
    # no reason: ASGI's 100-599 (600 and above only with a reason phrase)
    response = target.exchange(get("/reason?status=682"))  # reason "" is a reason
    assert status_line(response) == b"HTTP/1.1 682 "


@pytest.mark.parametrize("model", MODELS)
def test_incomplete_websocket_handshake_is_served_as_http(start, model):
    """Served as one HTTP request, then the connection closes (the rest of the stream is
    opaque): the requests carry no ``Connection: close``, a pipelined one that follows
    is never answered, nor a Content-Length body read as one."""
    target = start(model, "ext_app:app")
    upgrade = ("Upgrade: websocket", "Connection: Upgrade")
    behind = b"GET /reason?status=299&reason=SMUGGLED HTTP/1.1\r\nHost: t\r\n\r\n"
    for headers, after in [(("Sec-WebSocket-Version: 13",), b""),  # no key
                           ((f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 8"), b""),
                           ((f"Sec-WebSocket-Key: {KEY}",), b""),  # no version
                           (("Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13"), b""),
                           (("Sec-WebSocket-Version: 13",), behind),  # pipelined behind
                           (("Sec-WebSocket-Version: 13", f"Content-Length: {len(behind)}"),
                            behind)]:  # a body that looks like a request
        lines = ["GET /scope HTTP/1.1", "Host: t", *upgrade, *headers]
        with RawClient.over(target.sock(), timeout=10) as client:
            client.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + after)
            response = client.response()
            assert client.read_to_close() == b"", headers  # one response, then EOF
        assert response.status_line == b"HTTP/1.1 200 OK", headers
        assert response.header("connection") == b"close", headers
        seen = response.json()
        assert seen["type"] == "http" and seen["method"] == "GET"
        assert "qactuar.http.response.reason" in seen["extensions"]
        assert seen["model"] == model.removesuffix("-tls")
    # a complete handshake is still a websocket
    with target.websocket("/plain") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo:hi"


@pytest.mark.parametrize("model", MODELS)
def test_websocket_ping_events_and_compression_choice(start, model):
    target = start(model, "ext_app:app")
    with target.websocket("/ping") as ws:
        ws.send("ping:hello")  # the app's websocket.ping goes out; the client's pong comes back
        assert ws.recv(timeout=10) == "got pong:hello"
        ws.ping(b"abc").wait(10)  # answered by the server
        assert ws.recv(timeout=10) == "got ping:abc"
    # an app that did not ask gets no such event: the echo of the text sent
    # after the ping is the next thing it says
    with target.websocket("/plain") as ws:
        assert ws.ping(b"xyz").wait(10)
        ws.send("after")
        assert ws.recv(timeout=10) == "echo:after"
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
    # qactuar.compression False: no permessage-deflate although the client offers it
    with target.websocket("/nodeflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("x")
        assert ws.recv(timeout=10) == "echo:x"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("app", "path", "said"), [("ext_app:app", "/ping", "got pong:"),
                                                   ("ext_app:tornado_app", "/ws", "on_pong:")])
def test_the_keepalives_pongs_are_the_servers_own(start, model, app, path, said):
    """An app with ping events on (Tornado's on_pong through the bridge) hears of no pong
    to the server's keep-alive pings, only of the one to its own ping."""
    target = start(model, app, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "5")
    ws = target.raw_websocket(path)
    with ws:
        keepalive = 0
        for _ in range(50):  # three keep-alive pings, each answered
            frame = ws.read_frame(timeout=10)
            assert frame.opcode == PING, frame  # no text: no event for a pong
            ws.send_frame(PONG, frame.payload)
            keepalive += 1
            if keepalive == 3:
                break
        ws.send_frame(TEXT, b"ping:hello")  # the app pings; the pong is its
        for _ in range(50):
            frame = ws.read_frame(timeout=10)
            if frame.opcode == PING:
                ws.send_frame(PONG, frame.payload)
            else:
                break
        assert (frame.opcode, frame.payload) == (TEXT, f"{said}hello".encode())


@pytest.mark.parametrize("model", MODELS)
def test_a_send_only_app_with_ping_events_outlives_queue_times_interval(start, model):
    """The keep-alive's pongs fill no queue: an app that asked for ping events and never
    reads stays open (was: WS_MAX_QUEUE pongs paused reading, then 1011)."""
    target = start(model, "ext_app:app", "--ws-ping-interval", "0.1", "--ws-ping-timeout", "2",
                   "--ws-max-queue", "2")
    ws = target.raw_websocket("/pushonly")
    with ws:
        pings = 0
        for _ in range(1000):  # 25 pings answered: 2.5 s > queue x interval + timeout
            frame = ws.read_frame(timeout=10)
            assert frame.opcode in (PING, TEXT), frame  # never a close
            if frame.opcode == PING:
                ws.send_frame(PONG, frame.payload)
                pings += 1
                if pings == 25:
                    break
        assert pings == 25
        ws.send_frame(CLOSE, close_payload(1000))
        assert ws.read_close(timeout=10).close_code == 1000
    target.server.wait_for_log('"WebSocket /pushonly" closed 1000 ')


@pytest.mark.parametrize("model", MODELS)
def test_the_keepalive_does_not_cut_the_close_handshake_short(start, model):
    """The app closes (4001); the client answers the pings but holds its close back past
    the ping interval + timeout: the connection stays, and its close ends it: 4001."""
    target = start(model, "ext_app:app", "--ws-ping-interval", "0.25", "--ws-ping-timeout", "2")
    ws = target.raw_websocket("/close4001")
    with ws:
        frame = ws.read_frame(timeout=10)
        assert (frame.opcode, frame.close_code) == (CLOSE, 4001)
        for _ in range(10):  # 10 pings, 2.5 s > interval + timeout: the connection stayed
            frame = ws.read_frame(timeout=10)
            assert frame.opcode == PING, frame
            ws.send_frame(PONG, frame.payload)
        ws.send_frame(CLOSE, close_payload(4001))
        ws.expect_eof(timeout=10)
    target.server.wait_for_log('"WebSocket /close4001" closed 4001 ')


@pytest.mark.parametrize("model", MODELS)
def test_the_bridge_speaks_tornado_through_them(start, model):
    """Tornado's reason phrase and status 682 ("Unknown" for one older Tornado let
    through), its 400/426 for an incomplete handshake,
    ping()/on_ping/on_pong; and the one-time warning: the app has a WebSocketHandler
    and a coroutine waiting on a module-level Condition."""
    target = start(model, "ext_app:tornado_app")
    response = target.exchange(get("/status?code=682&reason=Foo"))
    assert status_line(response) == b"HTTP/1.1 682 Foo"
    response = target.exchange(get("/status?code=400&reason=Bad+Thing"))
    assert status_line(response) == b"HTTP/1.1 400 Bad Thing"
    # a reason older Tornado stored unchecked: "Unknown", as Tornado >= 6.5.3 makes it
    for bad in ("OK%0D%0AX-Injected:+1", "snow+%E2%98%83"):
        response = target.exchange(get("/old?reason=" + bad))
        assert status_line(response) == b"HTTP/1.1 400 Unknown", bad
        assert body(response) == b"old"
    # Tornado's answers to a handshake that is not one (a WebSocketHandler serving a GET)
    upgrade = ("Upgrade: websocket", "Connection: Upgrade")
    response = target.exchange(get("/ws", *upgrade, "Sec-WebSocket-Version: 13"))
    assert status_line(response) == b"HTTP/1.1 400 Bad Request"
    assert body(response) == b"Missing/Invalid WebSocket headers"
    response = target.exchange(get("/ws", *upgrade, f"Sec-WebSocket-Key: {KEY}",
                                   "Sec-WebSocket-Version: 8"))
    assert status_line(response) == b"HTTP/1.1 426 Upgrade Required"
    assert b"\r\nsec-websocket-version: 13\r\n" in response.lower()
    for key in ("c2hvcnQ=", "not base64!", f"{KEY}\r\nSec-WebSocket-Key: {KEY}"):
        # version 13 but the key is invalid or repeated: Tornado's 400, not 426
        response = target.exchange(get("/ws", *upgrade, f"Sec-WebSocket-Key: {key}",
                                       "Sec-WebSocket-Version: 13"))
        assert status_line(response) == b"HTTP/1.1 400 Bad Request", key
        assert body(response) == b"Missing/Invalid WebSocket headers"
    with target.websocket("/ws") as ws:
        # get_compression_options() is None (Tornado's default): declined, as by Tornado
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("ping:hello")  # self.ping(b"hello"); the client's pong reaches on_pong
        assert ws.recv(timeout=10) == "on_pong:hello"
        ws.ping(b"abc").wait(10)
        assert ws.recv(timeout=10) == "on_ping:abc"
    output = target.server.output()
    if model == "async":
        assert WARNING not in output  # logged before "Listening on" if at all
    else:
        name = model.removesuffix("-tls")
        assert output.count(f"served by the {name!r} {WARNING}") == 1, output
        for finding in ("ext_app.Pings is a WebSocketHandler",
                        "ext_app.Poll.post is a coroutine and a shared Condition is in "
                        "module ext_app (global_message_buffer.cond)",
                        "State across requests and processes"):
            assert finding in output


@pytest.mark.parametrize("model", ["fork", "prefork"])
def test_no_warning_for_a_stateless_tornado_app(start, model):
    target = start(model, "ext_app:tornado_plain")
    response = target.exchange(get("/"))
    assert body(response) == b"plain"
    assert WARNING not in target.server.output()  # decided at lifespan, before "Listening on"
