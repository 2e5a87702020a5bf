"""``request.connection.stream`` through the bridge, compared with Tornado's own HTTPServer.

Tornado's long-polling chat (demos/chat) checks
``self.request.connection.stream.closed()`` before it writes; the handlers of
tests/apps/tornado_longpoll.py are written that way. Each test serves the
same application by Tornado's HTTPServer (`REFERENCE`) and through the bridge
under every ASGI server the bridge is tested with (in a thread: qactuar's
async core), and says what the client sees in each; then by
``qactuar tornado_longpoll:application`` in each model. ``fork`` and
``prefork`` keep no in-memory state across requests (a message posted in one
process never reaches a poll waiting in another): there, what one request
shows is tested, ``stream.closed()`` false while its client waits and true
once it left, and no 500; the message reaching the poll, in ``async``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps.tornado_longpoll import make_app  # type: ignore[import-not-found]
from support import RawClient, Served, Spawned, wait_until

from .servers import DRIVERS, REFERENCE, serve_compared

WAIT = 10.0
TARGETS = [REFERENCE, *sorted(DRIVERS)]
MODELS = ["fork", "async", "prefork"]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """Tornado's HTTPServer, then the bridge under each ASGI server."""
    return str(request.param)


def _waiting(served: Served) -> int:
    reply = httpx.get(served.url + "/a/waiting", timeout=WAIT)
    assert reply.status_code == 200
    return int(reply.json()["waiting"])


def _start_poll(served: Served) -> RawClient:
    """The demo's long poll, sent; returns once its handler waits (the app says so)."""
    client = RawClient(served.port, timeout=WAIT)
    client.send(b"POST /a/message/updates HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    wait_until(lambda: _waiting(served) == 1, WAIT, what="the poll to wait for a message")
    return client


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_waiting_poll_receives_the_message_another_request_posts(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_compared(target, make_app()) as served:
        poll = _start_poll(served)
        with poll:
            posted = httpx.post(served.url + "/a/message/new", data={"body": "hello"},
                                timeout=WAIT)
            assert posted.status_code == 200
            message = posted.json()
            assert message["body"] == "hello"
            answer = poll.response(b"POST")
        assert answer.status == 200
        assert answer.text_header("content-type") == "application/json; charset=UTF-8"
        assert answer.json() == {"messages": [message]}
        assert _waiting(served) == 0
    assert _errors(caplog) == []


def test_a_poll_whose_client_leaves_is_cancelled_and_nothing_fails(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """on_connection_close cancels the wait (the demo's pattern): no 500, no error."""
    with serve_compared(target, make_app()) as served:
        _start_poll(served).close()
        wait_until(lambda: _waiting(served) == 0, WAIT, what="on_connection_close to end the wait")
        # The room goes on: a message posted now is answered normally.
        posted = httpx.post(served.url + "/a/message/new", data={"body": "late"}, timeout=WAIT)
        assert posted.status_code == 200
    assert _errors(caplog) == []


def test_stream_closed_is_false_while_the_client_waits_and_true_once_it_left(
    target: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_compared(target, make_app(str(tmp_path))) as served:
        with RawClient(served.port, timeout=WAIT) as client:
            client.send(b"GET /a/watch HTTP/1.1\r\nHost: t\r\n\r\n")
            assert wait_until(lambda: _read(tmp_path / "waiting"), WAIT,
                              what="the watch to wait") == "False"
            assert _read(tmp_path / "on_close") is None  # still there
        assert wait_until(lambda: _read(tmp_path / "after"), WAIT,
                          what="the watch to wake") == "True"
    assert _read(tmp_path / "on_close") == "True"
    assert _read(tmp_path / "timeout") is None
    assert _errors(caplog) == []


@pytest.mark.parametrize("linger", [False, True])
def test_closing_the_stream_before_a_response(
    target: str, linger: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Tornado drops the connection unanswered; an ASGI app cannot: a bodiless 500 that
    closes the connection, sent by the bridge itself (no false error from the server).
    on_connection_close runs if the handler lets the loop turn after the close, not if
    it finishes at once (Tornado clears it with the response)."""
    events: list[str] = []
    path = "/a/close-stream" + ("?linger=1" if linger else "")
    with serve_compared(target, make_app(events=events)) as served:
        with RawClient(served.port, timeout=WAIT) as client:
            client.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            if target == REFERENCE:
                assert client.read_to_close() == b""
            else:
                answer = client.response()
                assert answer.status == 500
                assert answer.text_header("connection") == "close"
                assert answer.text_header("content-length") == "0"
                assert client.closed_by_server()
    # The server has stopped: whatever the handler did is done.
    assert events == (["on_connection_close"] if linger else [])
    assert _errors(caplog) == []


def test_closing_the_stream_after_the_head_cuts_the_response_short(target: str) -> None:
    """Once the head is out, the client sees the response end early in both."""
    with serve_compared(target, make_app()) as served:
        with RawClient(served.port, timeout=WAIT) as client:
            client.send(b"GET /a/close-stream?after_head=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            received = client.read_to_close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\ntransfer-encoding: chunked" in head.lower()
    assert body == b"c\r\nfirst chunk\n\r\n"  # then the end, never the last chunk
    assert b"hello" not in received


def test_a_stream_close_callback_runs_when_the_client_leaves(target: str) -> None:
    events: list[str] = []
    with serve_compared(target, make_app(events=events)) as served:
        with RawClient(served.port, timeout=WAIT) as client:
            client.send(b"GET /a/close-callback HTTP/1.1\r\nHost: t\r\n\r\n")
            wait_until(lambda: "waiting" in events, WAIT, what="the handler to wait")
        wait_until(lambda: len(events) > 1, WAIT, what="the stream's close callback")
    assert events[:2] == ["waiting", "stream close callback"]


def test_socket_and_fileno_name_the_asgi_limit(target: str) -> None:
    with serve_compared(target, make_app()) as served:
        answers: dict[str, str] = httpx.get(served.url + "/a/fileno", timeout=WAIT).json()
    if target == REFERENCE:
        assert answers["fileno"].startswith("<socket.socket fd=")  # IOStream gives the socket
        assert answers["socket"] == "<class 'socket.socket'>"
        return
    no_socket = "an ASGI application has no socket: the connection belongs to the ASGI server"
    assert answers["fileno"].startswith(
        "UnsupportedOperation: request.connection.stream.fileno(): " + no_socket)
    assert answers["socket"].startswith(
        "AttributeError: request.connection.stream.socket: " + no_socket)


# -- qactuar processes, each model ------------------------------------------------


def _spawn(spawn_qactuar: Any, model: str, probe_dir: Path) -> Spawned:
    workers = ("--workers", "1") if model == "prefork" else ()
    server: Spawned = spawn_qactuar(
        "tornado_longpoll:application", "--model", model, *workers,
        env={"TORNADO_PROBE_DIR": str(probe_dir)})
    return server


def _watch(port: int, probe_dir: Path, awake_again: bool) -> dict[str, str | None]:
    """A client waits on /a/watch, then leaves: what stream.closed() said, and when."""
    with RawClient(port, timeout=WAIT) as client:
        client.send(b"GET /a/watch HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_until(lambda: _read(probe_dir / "waiting"), WAIT, what="the watch to wait")
        seen = {"on_close while waiting": _read(probe_dir / "on_close")}
    wait_until(lambda: _read(probe_dir / "on_close"), WAIT, what="on_connection_close")
    if awake_again:
        wait_until(lambda: _read(probe_dir / "after"), WAIT, what="the watch to wake")
    seen.update((name, _read(probe_dir / name)) for name in ("waiting", "on_close"))
    return seen


@pytest.mark.parametrize("model", MODELS)
def test_stream_closed_follows_the_client_in_every_model(
    spawn_qactuar: Any, model: str, tmp_path: Path
) -> None:
    expected = {"on_close while waiting": None, "waiting": "False", "on_close": "True"}
    reference_dir = tmp_path / REFERENCE
    reference_dir.mkdir()
    with serve_compared(REFERENCE, make_app(str(reference_dir))) as served:
        assert _watch(served.port, reference_dir, awake_again=True) == expected
    assert _read(reference_dir / "after") == "True"

    probe_dir = tmp_path / model
    probe_dir.mkdir()
    server = _spawn(spawn_qactuar, model, probe_dir)
    # In fork the child ends with the ASGI call: the handler's own code after
    # on_connection_close may not get its turn there (the process is gone).
    assert _watch(server.port, probe_dir, awake_again=model != "fork") == expected
    if model != "fork":
        assert _read(probe_dir / "after") == "True"
    assert _read(probe_dir / "timeout") is None
    # The request's access line (status 0: no response, the client left) comes
    # after anything the server would have logged for it.
    output = server.wait_for_log('"GET /a/watch HTTP/1.1" 0 ')
    assert "Traceback" not in output and " 500 " not in output
    assert "ERROR" not in output


def test_the_demo_poll_receives_a_posted_message_in_the_async_model(
    spawn_qactuar: Any, tmp_path: Path
) -> None:
    server = _spawn(spawn_qactuar, "async", tmp_path)
    with RawClient(server.port, timeout=WAIT) as poll:
        poll.send(b"POST /a/message/updates HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        wait_until(lambda: httpx.get(server.url + "/a/waiting", timeout=WAIT).json()["waiting"],
                   WAIT, what="the poll to wait")
        posted = httpx.post(server.url + "/a/message/new", data={"body": "hi"}, timeout=WAIT)
        assert posted.status_code == 200
        answer = poll.response(b"POST")
    assert answer.status == 200
    assert answer.json() == {"messages": [posted.json()]}
