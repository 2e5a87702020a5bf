"""A WebSocketHandler callback that raises, through the bridge and under Tornado's HTTPServer.

Tornado logs the traceback and drops the connection: the client sees no
close frame (1006). An ASGI app cannot drop a connection, and an app that
just returns gets a normal close (1000) from some servers, which hides the
failure: through the bridge the client sees 1011 (internal error), under
every ASGI server, and the traceback is logged once, as by Tornado. In a
thread (qactuar's async core, uvicorn, Hypercorn), then by qactuar processes
in each model.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from apps.tornado_longpoll import make_app  # type: ignore[import-not-found]
from support import Spawned
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import connect

from .servers import DRIVERS, REFERENCE, serve_compared

WAIT = 10.0
TARGETS = [REFERENCE, *sorted(DRIVERS)]
MODELS = ["fork", "async", "prefork"]

# path, message sent (None: nothing, open() raises), the error logged
FAILING = [
    ("/ws/boom", "hi", "boom on 'hi'"),
    ("/ws/aboom", "hi", "async boom on 'hi'"),
    ("/ws/open-boom", None, "boom in open"),
]


def failing_close(url: str, message: str | None) -> tuple[int | None, int | None]:
    """Connect, send ``message``: the close codes received and sent (None: no close frame)."""
    with connect(url, ping_interval=None, open_timeout=WAIT) as ws:
        if message is not None:
            ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT)
    rcvd, sent = closed.value.rcvd, closed.value.sent
    return (rcvd.code if rcvd else None), (sent.code if sent else None)


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each error logged, as the exception it carries (or its message)."""
    return [
        str(record.exc_info[1]) if record.exc_info else record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("path", "message", "error"), FAILING)
def test_a_raising_callback_is_a_server_side_failure_logged_once(
    target: str, path: str, message: str | None, error: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve_compared(target, make_app()) as served:
        url = served.url.replace("http://", "ws://", 1) + path
        received, sent = failing_close(url, message)
    # The server has stopped: all it and the handler logged is in.
    if target == REFERENCE:
        assert (received, sent) == (None, None)  # dropped: 1006 for the client
    else:
        assert (received, sent) == (1011, 1011)  # never the normal 1000
    assert logged_errors(caplog) == [error]



@pytest.mark.parametrize("target", TARGETS)
def test_closing_the_stream_before_the_handshake_is_answered_refuses_it(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Tornado sends nothing (no HTTP response at all); through the bridge the app's
    websocket.close before accepting is the server's 403."""
    with serve_compared(target, make_app()) as served:
        url = served.url.replace("http://", "ws://", 1) + "/ws/close-in-prepare"
        refused: pytest.ExceptionInfo[Exception]
        if target == REFERENCE:
            with pytest.raises(InvalidMessage) as refused:
                connect(url, ping_interval=None, open_timeout=WAIT)
            assert str(refused.value) == "did not receive a valid HTTP response"
        else:
            with pytest.raises(InvalidStatus) as refused:
                connect(url, ping_interval=None, open_timeout=WAIT)
            assert refused.value.response.status_code == 403
    assert logged_errors(caplog) == []


@pytest.mark.parametrize("path, error", [
    ("/ws/boom", "RuntimeError: boom on 'hi'"),
    ("/ws/aboom", "RuntimeError: async boom on 'hi'"),
])
@pytest.mark.parametrize("model", MODELS)
def test_a_raising_on_message_closes_1011_and_is_logged_once(
    spawn_qactuar: Any, model: str, path: str, error: str
) -> None:
    workers = ("--workers", "1") if model == "prefork" else ()
    server: Spawned = spawn_qactuar("tornado_longpoll:application", "--model", model, *workers)
    url = server.url.replace("http://", "ws://", 1) + path
    assert failing_close(url, "hi") == (1011, 1011)
    server.wait_for_log(error)
    server.stop()  # every line it would write is out
    output = server.output()
    assert output.count(error) == 1
    assert output.count("Traceback") == 1
    assert "ERROR" not in output  # nothing from the server: the handler's failure only
