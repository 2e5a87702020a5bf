"""The bridge under qactuar writes what Tornado writes, through qactuar's ASGI extensions:
each case served by Tornado's own HTTPServer and by the bridge under each ASGI server in
the same test, compared. Under uvicorn and Hypercorn (no such extensions) the bridge
behaves as it always did. Every process model: tests/test_extensions.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.web
import tornado.websocket
from support import RawClient, RawResponse, Served
from websockets.sync.client import connect

from qactuar.tornado_bridge import wrap

from .servers import DRIVERS, REFERENCE, serve_compared
from .test_wrap import _drive

TARGETS = [REFERENCE, *sorted(DRIVERS)]
# Where the status line and the handshake answers are Tornado's.
LIKE_TORNADO = (REFERENCE, "qactuar")
KEY = "MDEyMzQ1Njc4OWFiY2RlZg=="


class Status(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_status(int(self.get_argument("code")), self.get_argument("reason", None))
        self.finish("body")


class Plain(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish("plain GET")


class Pings(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        assert isinstance(message, str)
        if message.startswith("ping:"):
            self.ping(message[5:])
        else:
            self.write_message("echo:" + message)

    def on_ping(self, data: bytes) -> None:
        self.write_message("on_ping:" + data.decode())

    def on_pong(self, data: bytes) -> None:
        self.write_message("on_pong:" + data.decode())


class Denied(tornado.websocket.WebSocketHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(401, reason="Token Expired")


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [("/status", Status), ("/plain", Plain), ("/ws", Pings), ("/denied", Denied)]
    )


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _get(served: Served, path: str, *headers: str) -> RawResponse:
    """The response to one GET on a new connection, read by its framing."""
    with RawClient(served.port, timeout=10) as client:
        client.send(("\r\n".join([f"GET {path} HTTP/1.1", "Host: t", *headers])
                     + "\r\n\r\n").encode())
        return client.response()


def test_reason_phrase_and_status_682(target: str) -> None:
    with serve_compared(target, make_app()) as served:
        bad_thing = _get(served, "/status?code=400&reason=Bad+Thing")
        injected = _get(served, "/status?code=200&reason=OK%0D%0AX-Injection:injected")
        if target in LIKE_TORNADO:  # (uvicorn drops the connection on 682, Hypercorn
            # writes it without a phrase: the bridge cannot help it there)
            foo = _get(served, "/status?code=682&reason=Foo")
            unknown = _get(served, "/status?code=682")
    assert (b"x-injection", b"injected") not in injected.headers
    if target in LIKE_TORNADO:
        assert bad_thing.status_line == b"HTTP/1.1 400 Bad Thing"
        assert injected.status_line == b"HTTP/1.1 200 Unknown"  # Tornado's in place of it
        assert foo.status_line == b"HTTP/1.1 682 Foo" and foo.body == b"body"
        assert unknown.status_line == b"HTTP/1.1 682 Unknown"
    else:  # as before: the server's own phrase (or none)
        assert (bad_thing.status, injected.status) == (400, 200)
        assert b"Bad Thing" not in bad_thing.status_line
        assert b"Unknown" not in injected.status_line


def test_an_incomplete_handshake_is_an_ordinary_get(target: str) -> None:
    upgrade = ("Upgrade: websocket", "Connection: Upgrade")
    with serve_compared(target, make_app()) as served:
        plain = _get(served, "/plain", *upgrade, "Sec-WebSocket-Version: 13")
        no_key = _get(served, "/ws", *upgrade, "Sec-WebSocket-Version: 13")
        version = _get(served, "/ws", *upgrade, f"Sec-WebSocket-Key: {KEY}",
                       "Sec-WebSocket-Version: 8")
    if target in LIKE_TORNADO:
        assert (plain.status, plain.body) == (200, b"plain GET")
        assert (no_key.status, no_key.body) == (400, b"Missing/Invalid WebSocket headers")
        assert version.status == 426
        assert (b"sec-websocket-version", b"13") in version.headers
    else:  # as before: the server refuses it before any app is called
        assert (plain.status, no_key.status) == (400, 400)
        assert plain.body != b"plain GET"


def test_ping_on_ping_and_on_pong(target: str) -> None:
    with serve_compared(target, make_app()) as served:
        # no client keep-alive thread: the test checks that no thread is left behind
        with connect(f"ws://127.0.0.1:{served.port}/ws", open_timeout=10,
                     ping_interval=None) as ws:
            heard = []
            if target in LIKE_TORNADO:
                ws.send("ping:hello")  # self.ping(): the client's pong reaches on_pong
                heard.append(ws.recv(timeout=10))
            # the client's ping is answered in any case, and told to on_ping
            # before the message that follows it
            assert ws.ping(b"abc").wait(10)
            ws.send("marker")
            heard.append(ws.recv(timeout=10))
            if target in LIKE_TORNADO:
                heard.append(ws.recv(timeout=10))
            else:  # as before: ping() sends nothing, the next message is the echo
                ws.send("ping:hello")
                ws.send("marker2")
                heard.append(ws.recv(timeout=10))
    if target in LIKE_TORNADO:
        assert heard == ["on_pong:hello", "on_ping:abc", "echo:marker"]
    else:
        assert heard == ["echo:marker", "echo:marker2"]


def test_a_refused_handshake_keeps_its_reason_phrase(target: str) -> None:
    """The denial response (websocket.http.response.start) carries the reason too."""
    with serve_compared(target, make_app()) as served:
        denied = _get(served, "/denied", "Upgrade: websocket", "Connection: Upgrade",
                      f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13")
    assert denied.status == 401
    if target in LIKE_TORNADO:
        assert denied.status_line == b"HTTP/1.1 401 Token Expired"
    else:
        assert b"Token Expired" not in denied.status_line


class OldStatus(tornado.web.RequestHandler):
    """Tornado < 6.5.3's set_status stored any reason unchecked: emulated here."""

    def get(self) -> None:
        self.set_status(int(self.get_argument("code")))
        reason = self.get_argument("reason", None)
        if reason is not None:
            self._reason = reason
        self.finish("body")


class OldDenied(tornado.websocket.WebSocketHandler):
    def prepare(self) -> None:
        self.set_status(401)
        self._reason = self.get_argument("reason")
        self.finish()


def _start(path: str, query: str, websocket: bool = False) -> dict[str, Any]:
    """The bridge's response start for one request, the reason extension offered."""
    app = wrap([("/old", OldStatus), ("/olddenied", OldDenied)])
    headers = [(b"host", b"t")]
    scope: dict[str, Any] = {
        "type": "http", "method": "GET", "path": path, "query_string": query.encode(),
        "headers": headers, "http_version": "1.1",
        "extensions": {"qactuar.http.response.reason": {}},
    }
    incoming: list[dict[str, Any]] = [{"type": "http.request", "body": b""}]
    if websocket:
        scope["type"] = "websocket"
        scope["extensions"]["websocket.http.response"] = {}
        headers += [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
                    (b"sec-websocket-key", KEY.encode()), (b"sec-websocket-version", b"13")]
        incoming = [{"type": "websocket.connect"}]
    sent = _drive(app, scope, incoming)
    return next(m for m in sent if m["type"].endswith("http.response.start"))


@pytest.mark.parametrize("websocket", [False, True])
@pytest.mark.parametrize("reason", ["OK\r\nX-Injected: 1", "a\nb", "snow \u2603", "<b>", ""])
def test_a_reason_tornado_would_refuse_is_sent_as_unknown(reason: str, websocket: bool) -> None:
    """As Tornado >= 6.5.3 makes it in set_status; older Tornado passed it on (a 500)."""
    path = "/olddenied" if websocket else "/old"
    start = _start(path, urlencode({"code": 401, "reason": reason}), websocket)
    assert (start["status"], start["reason"]) == (401, "Unknown")


@pytest.mark.parametrize(("query", "reason"), [
    ("code=200", None), ("code=404", None), ("code=404&reason=Not+Found", None),
    ("code=404&reason=Gone", "Gone"), ("code=299", "Unknown"), ("code=682", "Unknown"),
    ("code=682&reason=OK", "OK"),
])
def test_the_reason_is_sent_only_when_it_is_not_the_standard_one(query: str,
                                                                 reason: str | None) -> None:
    start = _start("/old", query)
    assert start.get("reason") == reason
