"""The bridge's one-time warning for state the fork/prefork models split (`_processes`):
what it recognises, what it leaves alone, once per app; driven with ASGI scopes directly.
End to end in every model: tests/test_extensions.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import tornado.locks
import tornado.web
import tornado.websocket
from apps.tornado_longpoll import make_app  # type: ignore[import-not-found]

from qactuar.tornado_bridge import wrap


class Room(tornado.websocket.WebSocketHandler):
    pass


class WaitsOnClassCondition(tornado.web.RequestHandler):
    cond = tornado.locks.Condition()

    async def post(self) -> None:
        await self.cond.wait()


class SyncWithCondition(tornado.web.RequestHandler):
    cond = tornado.locks.Condition()

    def get(self) -> None:  # not a coroutine: it cannot wait for another request
        self.cond.notify_all()


class Plain(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write("ok")


def _lifespan_scope(model: str | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    if model is not None:
        scope["extensions"] = {"qactuar.process_model": {"model": model}}
    return scope


def _run_lifespan(app: Any, model: str | None) -> None:
    async def main() -> None:
        messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            pass

        await app(_lifespan_scope(model), receive, send)

    asyncio.run(main())


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "qt_server" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("model", ["fork", "prefork"])
def test_what_it_recognises_is_named_once(model: str, caplog: pytest.LogCaptureFixture) -> None:
    app = wrap([("/room", Room), ("/b", WaitsOnClassCondition),
                ("/c", SyncWithCondition), ("/d", Plain)])
    with caplog.at_level(logging.WARNING, logger="qt_server"):
        _run_lifespan(app, model)
        _run_lifespan(app, model)  # once per app and process
    [warning] = _warnings(caplog)
    assert f"served by the {model!r} process model" in warning
    assert f"{__name__}.Room is a WebSocketHandler" in warning
    assert (f"{__name__}.WaitsOnClassCondition.post is a coroutine and a shared Condition is in "
            "class WaitsOnClassCondition (cond)") in warning
    assert "SyncWithCondition" not in warning and "Plain" not in warning
    assert "State across requests and processes" in warning


@pytest.mark.parametrize("model", ["async", None])
def test_nothing_where_state_is_shared_or_the_server_says_nothing(
        model: str | None, caplog: pytest.LogCaptureFixture) -> None:
    app = wrap([("/room", Room)])
    with caplog.at_level(logging.WARNING, logger="qt_server"):
        _run_lifespan(app, model)
    assert _warnings(caplog) == []


def test_nothing_for_an_app_it_sees_no_sign_of_state_in(
        caplog: pytest.LogCaptureFixture) -> None:
    app = wrap([("/c", SyncWithCondition), ("/d", Plain)])
    with caplog.at_level(logging.WARNING, logger="qt_server"):
        _run_lifespan(app, "fork")
    assert _warnings(caplog) == []


def test_nested_applications_are_looked_into(caplog: pytest.LogCaptureFixture) -> None:
    inner = tornado.web.Application([("/room", Room)])
    app = wrap(tornado.web.Application([(r"/inner.*", inner)]))
    with caplog.at_level(logging.WARNING, logger="qt_server"):
        _run_lifespan(app, "prefork")
    [warning] = _warnings(caplog)
    assert "Room is a WebSocketHandler" in warning


def test_the_long_poll_chat_is_recognised(caplog: pytest.LogCaptureFixture) -> None:
    """Tornado's chat demo (tests/apps/tornado_longpoll.py): its buffer, with the Condition
    the polls wait on, reaches the handlers as an initialize argument."""
    with caplog.at_level(logging.WARNING, logger="qt_server"):
        _run_lifespan(wrap(make_app()), "fork")
    [warning] = _warnings(caplog)
    assert ("tornado_longpoll.MessageUpdatesHandler.post is a coroutine and a shared Condition "
            "is in its initialize arguments (buffer.cond)") in warning
    assert "tornado_longpoll.BoomHandler is a WebSocketHandler" in warning
