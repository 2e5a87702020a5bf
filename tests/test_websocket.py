"""WebSockets in every process model (issue 7), over real sockets with the ``websockets`` client.

Each model serves ``tests/apps/ws.py`` from one process per module (the
``served`` fixture); tests that need other settings start their own.
Keep-alive pings are timed with a clock driven by hand in
tests/protocol/test_ws_keepalive.py; here one test per model shows that the
settings reach the process that serves, with bounds that hold on a loaded
machine (the setting plus ``MARGIN``). Cases
that a client library refuses to produce (bad UTF-8, unmasked frames, a
deflate bomb, a vanishing client) are written with raw frames (tests/wsraw.py).
The app reports the ``websocket.disconnect`` it saw into a file per
connection, so a test learns the close code even from a fork child.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import socket
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from support import RawClient, start_qactuar, wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from wsraw import (
    BINARY,
    CLOSE,
    TEXT,
    ZERO_MASK,
    RawWebSocket,
    close_payload,
    encode_frame,
    handshake_request,
    http_exchange,
    read_report,
)

from qactuar.config import MODELS

MIB = 1024 * 1024
MARGIN = 2.5  # what an end-to-end timeout may take beyond its setting
DEFLATE = [("Sec-WebSocket-Extensions", "permessage-deflate")]


class Served:
    """A ``qactuar ws:app`` process; ``report(id)`` reads what the app saw at disconnect."""

    def __init__(self, model: str, args: tuple[str, ...], tmp: str) -> None:
        self.model = model
        self.report_dir = os.path.join(tmp, f"reports-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.report_dir)
        extra = ("--workers", "2") if model == "prefork" else ()
        self.spawned = start_qactuar(
            "ws:app", "--model", model, *extra, *args,
            log_path=os.path.join(self.report_dir, "server.log"),
            env={"QT_WS_REPORT_DIR": self.report_dir})
        self.proc = self.spawned.proc
        self.port = self.spawned.port

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def report(self, ident: str, timeout: float = 5) -> dict[str, Any]:
        return read_report(self.report_dir, ident, timeout)

    def output(self) -> str:
        return self.spawned.output()

    def wait_output(self, pattern: str, timeout: float = 5) -> re.Match[str]:
        return wait_until(lambda: re.search(pattern, self.output()), timeout,
                          what=f"{pattern!r} in the server output")

    def stop(self) -> None:
        self.spawned.stop()


@pytest.fixture(scope="module", params=MODELS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    """One server per model for the whole module; WS_MAX_QUEUE 4 for the back-pressure case."""
    server = Served(request.param, ("--ws-max-queue", "4"),
                    str(tmp_path_factory.mktemp("ws")))
    yield server
    server.stop()


@pytest.fixture
def start(tmp_path: Any) -> Iterator[Any]:
    """``start(model, *args)``: a server with its own settings, stopped after the test."""
    started: list[Served] = []

    def run(model: str, *args: str) -> Served:
        server = Served(model, args, str(tmp_path))
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()




def ident() -> str:
    return uuid.uuid4().hex[:12]


def memory_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


# echo and sizes ---------------------------------------------------------------------


def test_echo_text_and_bytes(served: Served) -> None:
    with connect(served.url("/echo"), open_timeout=5, close_timeout=5) as ws:
        ws.send("hello, ünïcode ✓")
        assert ws.recv(timeout=5) == "hello, ünïcode ✓"
        ws.send(b"\x00\x01binary\xff")
        assert ws.recv(timeout=5) == b"\x00\x01binary\xff"
        for n in range(20):
            ws.send(f"message {n}")
        assert [ws.recv(timeout=5) for _ in range(20)] == [f"message {n}" for n in range(20)]


def test_one_mib_message_is_echoed(served: Served) -> None:
    payload = os.urandom(MIB)  # incompressible: the wire carries the whole MiB
    with connect(served.url("/echo"), open_timeout=5, max_size=2 * MIB) as ws:
        ws.send(payload)
        assert ws.recv(timeout=10) == payload
        text = "é" * (MIB // 2)  # 1 MiB of UTF-8
        ws.send(text)
        assert ws.recv(timeout=10) == text


def test_message_over_the_limit_closes_with_1009(served: Served) -> None:
    name = ident()
    with connect(served.url(f"/echo?id={name}"), open_timeout=5, compression=None) as ws:
        ws.send(b"x" * (MIB + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert served.report(name)["code"] == 1009


def test_invalid_utf8_in_a_text_frame_closes_with_1007(served: Served) -> None:
    with RawWebSocket.open(served.port, "/echo") as ws:
        ws.send_frame(TEXT, b"valid then \xc3\x28 invalid")
        assert ws.read_close().close_code == 1007


def test_unmasked_client_frame_closes_with_1002(served: Served) -> None:
    with RawWebSocket.open(served.port, "/echo") as ws:
        ws.send_frame(TEXT, b"unmasked", mask=b"")
        assert ws.read_close().close_code == 1002


def test_frames_in_the_same_packet_as_the_handshake(served: Served) -> None:
    """A client may send frames right behind its handshake, before the 101 (RFC 6455 §4.1)."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(handshake_request("/echo", served.port)
                     + encode_frame(TEXT, b"eager") + encode_frame(BINARY, b"\x00eager"))
        client = RawClient.over(sock)
        head = client.read_until(b"\r\n\r\n")
        ws = RawWebSocket(sock, b"", client.buf)
        assert head.startswith(b"HTTP/1.1 101")
        assert [(f.opcode, f.payload) for f in (ws.read_message(), ws.read_message())] == [
            (TEXT, b"eager"), (BINARY, b"\x00eager")]


def test_subprotocol_negotiation_and_accept_headers(served: Served) -> None:
    with connect(served.url("/echo"), subprotocols=["chat.v2", "chat.v1"],  # type: ignore[list-item]
                 open_timeout=5) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat.v1"
        assert ws.response.headers["x-ws-app"] == "echo"
        ws.send("sub")
        assert ws.recv(timeout=5) == "sub"
    with connect(served.url("/echo"), subprotocols=["other"],  # type: ignore[list-item]
                 open_timeout=5) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


def test_websocket_scope(served: Served) -> None:
    with connect(served.url("/scope?a=1&b=%20"), open_timeout=5,
                 subprotocols=["one", "two"],  # type: ignore[list-item]
                 additional_headers={"X-Custom": "yes"}) as ws:
        scope = json.loads(ws.recv(timeout=5))
        local = ws.socket.getsockname()
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == ("/scope", "/scope", "")
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["subprotocols"] == ["one", "two"]
    assert ["x-custom", "yes"] in scope["headers"]
    assert ["upgrade", "websocket"] in scope["headers"]
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == ["127.0.0.1", served.port]
    assert isinstance(scope["state"], dict)
    assert "websocket.http.response" in scope["extensions"]


# close codes ---------------------------------------------------------------------------


def test_app_closes_with_4001_and_a_reason(served: Served) -> None:
    name = ident()
    with connect(served.url(f"/close4001?id={name}"), open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "going, bye")
    assert served.report(name)["code"] == 4001


def test_client_close_code_reaches_the_app(served: Served) -> None:
    name = ident()
    with connect(served.url(f"/echo?id={name}"), open_timeout=5, close_timeout=5) as ws:
        ws.send("before closing")
        assert ws.recv(timeout=5) == "before closing"
        ws.close(4002, "client done")
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 4002
    report = served.report(name)
    assert (report["code"], report.get("reason")) == (4002, "client done")


def test_app_that_closes_and_returns_at_once(served: Served) -> None:
    """websocket.close then return: the close frame goes out once, the stream ends."""
    with RawWebSocket.open(served.port, "/closereturn") as ws:
        port = ws.sock.getsockname()[1]
        closing = ws.read_close()
    assert closing.close_code == 4003
    served.wait_output(rf'127\.0\.0\.1:{port} - "WebSocket /closereturn" closed 4003 ')
    assert "Exception" not in served.output()


def test_an_over_long_close_reason_from_the_app_is_cut(served: Served) -> None:
    """A close frame holds 123 bytes of reason: the app's 200 are cut at a character."""
    with connect(served.url("/closelong"), open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "é" * 61)


def test_the_101_response_carries_qactuar_headers(served: Served, start: Any) -> None:
    with RawWebSocket.open(served.port, "/echo") as ws:
        assert ws.header("server") == "qactuar"
        assert ws.header("date")
        assert ws.response.lower().count(b"\r\nserver:") == 1
    if served.model != "async":
        return
    bare = start("async", "--no-server-header", "--no-date-header")
    with RawWebSocket.open(bare.port, "/echo") as ws:
        assert ws.header("server") is None and ws.header("date") is None
        ws.send_frame(TEXT, b"works")
        assert ws.read_message().payload == b"works"


def test_a_big_cookie_does_not_break_the_upgrade(served: Served) -> None:
    """A 12 kB Cookie header is within MAX_HEADER_BYTES: the upgrade goes through."""
    cookie = "; ".join(f"c{n}={'v' * 100}" for n in range(120))
    with connect(served.url("/echo"), open_timeout=5,
                 additional_headers={"Cookie": cookie}) as ws:
        ws.send("with cookies")
        assert ws.recv(timeout=5) == "with cookies"


def test_client_gone_before_accept(served: Served, tmp_path: Any) -> None:
    """The app's accept raises an OSError (ASGI: send on a closed connection), no 500 noise."""
    name = ident()
    flag = str(tmp_path / f"accept-{name}")
    ws = RawWebSocket.open_unanswered(served.port, f"/slowaccept?id={name}&flag={flag}")
    try:
        wait_until(lambda: os.path.exists(flag + ".in"), 5,
                   what="the app to be deciding whether to accept")
    finally:
        ws.close()
    open(flag, "w").close()  # the app accepts now, on a connection already gone
    report = served.report(name)
    assert report["oserror"] is True, report
    # the connection's access line is logged after any traceback its app caused
    served.wait_output(rf'"WebSocket /slowaccept\?id={name}&flag=[^"]*" closed 1006 ')
    assert "Exception in ASGI websocket application for /slowaccept" not in served.output()


def test_denial_response_is_read_as_http(served: Served) -> None:
    with pytest.raises(InvalidStatus) as denied:
        connect(served.url("/deny"), open_timeout=5)
    response = denied.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"no token, no socket"
    served.wait_output(r'"WebSocket /deny" 401 [\d.]+ms')


def test_close_before_accept_is_403(served: Served) -> None:
    with pytest.raises(InvalidStatus) as denied:
        connect(served.url("/reject"), open_timeout=5)
    assert denied.value.response.status_code == 403
    served.wait_output(r'"WebSocket /reject" 403 [\d.]+ms')


def test_app_error_before_accept_is_500(served: Served) -> None:
    with pytest.raises(InvalidStatus) as denied:
        connect(served.url("/crash"), open_timeout=5)
    assert denied.value.response.status_code == 500


def test_client_vanishing_mid_stream_gives_the_app_1006(served: Served) -> None:
    name = ident()
    ws = RawWebSocket.open(served.port, f"/echo?id={name}")
    ws.send_frame(TEXT, b"first")
    assert ws.read_message().payload == b"first"
    ws.send(encode_frame(BINARY, b"x" * 1000)[:300])  # half a frame, then gone
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    ws.close()
    assert served.report(name)["code"] == 1006


# limits ------------------------------------------------------------------------------------


def bomb_payload(inflated: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MIB)
    out = [comp.compress(chunk) for _ in range(inflated // MIB)]
    out.append(comp.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(out)
    return data[:-4]


def test_compression_bomb_closes_with_1009_and_memory_stays_flat(served: Served) -> None:
    payload = bomb_payload(50 * MIB)
    assert len(payload) < 100 * 1024  # a small message on the wire
    name = ident()
    with RawWebSocket.open(served.port, f"/echo?id={name}&linger=2",
                           extra=DEFLATE) as ws:
        assert (ws.header("sec-websocket-extensions") or "").startswith("permessage-deflate")
        pid = int(ws.header("x-pid") or 0)
        assert pid != served.proc.pid or served.model == "async"
        # a small compressed message works
        ws.send_frame(TEXT, _deflated(b"hello " * 100), rsv=4)
        echoed = ws.read_message()
        assert echoed.opcode == TEXT
        before = memory_kib(pid, "VmHWM")
        ws.send(encode_frame(BINARY, payload, rsv=4, mask=ZERO_MASK))
        closing = ws.read_message(timeout=10)
        after = memory_kib(pid, "VmHWM")  # the app lingers: the process is still there
        assert (closing.opcode, closing.close_code) == (CLOSE, 1009)
    assert served.report(name)["code"] == 1009
    assert after - before < 10 * 1024, f"peak RSS grew by {(after - before) // 1024} MiB"


def _deflated(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_close_handshake_ends_the_stream_while_the_app_lingers(served: Served,
                                                               tmp_path: Any) -> None:
    """After the close handshake the server ends TCP at once (RFC 6455 §7.1.1), even
    if the app still runs after its websocket.disconnect (here until the test releases it)."""
    release = str(tmp_path / f"release-{ident()}")
    try:
        with RawWebSocket.open(served.port, f"/echo?release={release}") as ws:
            ws.send_frame(CLOSE, close_payload(1000))
            # a server waiting for the app to return would time out here
            assert ws.read_close(timeout=MARGIN + 2).close_code == 1000
    finally:
        open(release, "w").close()


@pytest.mark.parametrize(
    "request_kwargs",
    [{"version": "8"}, {"version": None}, {"key": None}, {"key": "c2hvcnQ="}, {"method": "POST"}],
    ids=["version-8", "no-version", "no-key", "short-key", "post"],
)
def test_bad_handshakes_are_served_as_http(served: Served, request_kwargs: dict[str, Any]) -> None:
    """Not a complete handshake: the ordinary HTTP request it also is (RFC 9110 §7.8), which
    the app answers (ws.py: 404 for /echo over HTTP); tests/test_extensions.py has more."""
    got, headers, body = http_exchange(
        served.port, handshake_request("/echo", served.port, **request_kwargs))
    assert (got, body) == (404, b"not found")
    assert headers["connection"] == "close"  # the rest of the stream is not HTTP


def test_upgrade_with_a_body_is_served_as_http(served: Served) -> None:
    request = handshake_request("/echo", served.port, extra=[("Content-Length", "5")]) + b"hello"
    status, _, body = http_exchange(served.port, request)
    assert (status, body) == (404, b"not found")


def test_back_pressure_when_the_app_does_not_read(served: Served, tmp_path: Any) -> None:
    """WS_MAX_QUEUE 4: once 4 messages wait for the app, the server stops reading."""
    flag = str(tmp_path / f"go-{ident()}")
    frame = encode_frame(BINARY, b"\x00" * 65536, mask=ZERO_MASK)
    with RawWebSocket.open(served.port, f"/hold?flag={flag}") as ws:
        ws.sock.setblocking(False)
        sent = 0
        sent_frames = 0
        stalled_since = None
        limit = 200 * MIB
        deadline = time.monotonic() + 15
        pending = frame
        while sent < limit and time.monotonic() < deadline:
            try:
                n = ws.sock.send(pending)
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break
                time.sleep(0.01)
                continue
            stalled_since = None
            sent += n
            pending = pending[n:]
            if not pending:
                sent_frames += 1
                pending = frame
        assert stalled_since is not None, f"the server read {sent // MIB} MiB without pausing"
        # socket buffers hold a few MiB; the app's queue 4 x 64 KiB
        assert sent < 40 * MIB
        with open(flag, "w"):
            pass
        ws.sock.setblocking(True)
        ws.sock.settimeout(10)
        ws.sock.sendall(pending + encode_frame(TEXT, b"end"))
        sent_frames += 1
        reply = ws.read_message(timeout=15)
    assert reply.payload == f"got {sent_frames}".encode()


def test_a_client_that_does_not_read_holds_the_app_back(served: Served, tmp_path: Any) -> None:
    """The app's sends wait while the client reads nothing (100 MiB offered): memory stays flat."""
    name = ident()
    progress = str(tmp_path / f"sent-{name}")

    def sent() -> int:
        try:
            with open(progress) as fh:
                return int(fh.read() or 0)
        except FileNotFoundError:
            return 0

    with RawWebSocket.open(served.port, f"/flood?n=1600&id={name}&progress={progress}") as ws:
        pid = int(ws.header("x-pid") or 0)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        before = memory_kib(pid, "VmRSS")
        # until the app has sent something and then stood still for 0.5 s
        count, since = 0, time.monotonic()
        deadline = since + 20
        while time.monotonic() < deadline and (count == 0 or time.monotonic() - since < 0.5):
            if sent() != count:
                count, since = sent(), time.monotonic()
            time.sleep(0.02)
        grown = memory_kib(pid, "VmRSS") - before
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    report = served.report(name)
    assert grown < 20 * 1024, f"the server buffered {grown // 1024} MiB for a stalled client"
    assert report["error"] and report["sent"] < 400, report  # far from all 1600 sent


@pytest.mark.parametrize("model", MODELS)
def test_settings_reach_every_model(start: Any, model: str) -> None:
    """--ws-max-message-bytes 1000 and --no-ws-compression, in whichever process serves."""
    server = start(model, "--ws-max-message-bytes", "1000", "--no-ws-compression")
    with RawWebSocket.open(server.port, "/echo", extra=DEFLATE) as ws:
        assert ws.header("sec-websocket-extensions") is None
        ws.send_frame(BINARY, b"x" * 1000)
        assert ws.read_message().payload == b"x" * 1000
        ws.send_frame(BINARY, b"x" * 1001)
        assert ws.read_close().close_code == 1009
    with RawWebSocket.open(server.port, "/echo", extra=DEFLATE) as ws:
        ws.send_frame(TEXT, _deflated(b"compressed anyway"), rsv=4)
        assert ws.read_close().close_code == 1002  # RSV1 without the extension


@pytest.mark.parametrize("model", MODELS)
def test_ping_keepalive_closes_a_client_that_does_not_answer(start: Any, model: str) -> None:
    server = start(model, "--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5")
    with RawWebSocket.open(server.port, "/echo") as silent:
        began = time.monotonic()
        frame = silent.read_frame(timeout=0.5 + MARGIN)
        assert frame.opcode == 0x9  # a ping
        assert time.monotonic() - began >= 0.4
        closing = silent.read_close(timeout=0.5 + MARGIN)
        lasted = time.monotonic() - began
    assert closing.close_code == 1011
    assert 0.9 <= lasted <= 1 + 2 * MARGIN


# many connections ------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_500_concurrent_websockets_each_exchanging_10_messages(start: Any, model: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    # in the fork model each open websocket is a live child (MAX_WEBSOCKETS of them)
    extra = ("--max-processes", "600", "--max-websockets", "500") if model == "fork" else ()
    server = start(model, "--no-access-log", *extra)

    async def one(n: int) -> int:
        async with websockets.connect(server.url("/echo"), open_timeout=20,
                                      close_timeout=10) as ws:
            for i in range(10):
                await ws.send(f"{n}:{i}")
                assert await asyncio.wait_for(ws.recv(), 20) == f"{n}:{i}"
        return n

    async def main() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(500))), 40)

    began = time.monotonic()
    assert sorted(asyncio.run(main())) == list(range(500))
    assert time.monotonic() - began < 30


# lifetimes ------------------------------------------------------------------------------


def test_request_timeout_does_not_kill_a_fork_websocket(start: Any) -> None:
    server = start("fork", "--request-timeout", "0.5", "--check-process-interval", "0.1")
    with connect(server.url("/echo"), open_timeout=5) as ws:
        ws.send("start")
        assert ws.recv(timeout=5) == "start"
        # an HTTP request started after the WebSocket runs past REQUEST_TIMEOUT:
        # its 504 shows the sweep killed what was overdue, the WebSocket's child aside
        url = f"http://127.0.0.1:{server.port}/sleep?60"
        assert httpx.get(url, timeout=0.5 + MARGIN + 5).status_code == 504
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"
    assert server.output().count("killed after REQUEST_TIMEOUT") == 1


@pytest.mark.parametrize("model", MODELS)
def test_graceful_shutdown_closes_websockets_with_1001(start: Any, model: str) -> None:
    server = start(model, "--graceful-timeout", "1")
    name = ident()
    with connect(server.url(f"/echo?id={name}"), open_timeout=5, close_timeout=5) as ws:
        ws.send("open")
        assert ws.recv(timeout=5) == "open"
        began = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        ws.send("during the grace period")
        assert ws.recv(timeout=5) == "during the grace period"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        waited = time.monotonic() - began
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert 0.8 < waited < 5
    assert server.report(name)["code"] == 1001
    assert server.proc.wait(15) == 0


@pytest.mark.skipif("prefork" not in MODELS, reason="no prefork model")
def test_prefork_reload_drains_websockets_with_1001(start: Any) -> None:
    """SIGHUP: the old worker's websocket gets 1001 after GRACEFUL_TIMEOUT; new ones connect."""
    server = start("prefork", "--workers", "1", "--graceful-timeout", "1")
    with connect(server.url("/echo"), open_timeout=5, close_timeout=5) as old:
        old.send("before")
        assert old.recv(timeout=5) == "before"
        old_pid = old.response.headers["x-pid"]
        began = time.monotonic()
        server.proc.send_signal(signal.SIGHUP)
        server.wait_output(r"Stopping worker")
        with connect(server.url("/echo"), open_timeout=5) as new:
            assert new.response.headers["x-pid"] != old_pid
            new.send("new worker")
            assert new.recv(timeout=5) == "new worker"
            old.send("still served")
            assert old.recv(timeout=5) == "still served"
            with pytest.raises(ConnectionClosed) as closed:
                old.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert 0.8 < time.monotonic() - began < 5
            new.send("unaffected")
            assert new.recv(timeout=5) == "unaffected"


def test_access_log_records_the_upgrade_and_the_close(served: Served) -> None:
    with connect(served.url("/echo?id=logged"), open_timeout=5, close_timeout=5) as ws:
        port = ws.socket.getsockname()[1]
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        # while it is open, the upgrade is already in the log
        served.wait_output(rf'127\.0\.0\.1:{port} - "WebSocket /echo\?id=logged" 101')
        time.sleep(0.3)
        ws.close(4002, "bye")
    line = served.wait_output(
        rf'127\.0\.0\.1:{port} - "WebSocket /echo\?id=logged" closed 4002 ([\d.]+)ms')
    assert 300 <= float(line.group(1)) < 10_000
