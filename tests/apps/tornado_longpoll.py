"""Tornado handlers written as Tornado's demos write them, for the bridge's fidelity tests.

- ``/a/message/updates`` and ``/a/message/new``: the long-polling chat of
  Tornado's demos/chat. The poll waits on a Condition for a message another
  request posts, and checks ``self.request.connection.stream.closed()`` before
  writing; its ``on_connection_close`` cancels the wait. ``/a/waiting`` says
  how many polls wait (the tests' signal that a poll is in).
- ``/a/watch``: a long poll that waits for its own client to leave and writes
  what ``stream.closed()`` said while it waited (``waiting``), in its
  ``on_connection_close`` (``on_close``) and once awake again (``after``),
  each as a file in ``probe_dir``: what a
  single request can show in every process model (``fork`` and ``prefork``
  keep no in-memory state across requests).
- ``/a/close-stream``: closes ``request.connection.stream``, then writes and
  finishes (Tornado's web_test ClientCloseTest); ``?after_head=1`` flushes the
  head and a first chunk first; ``?linger=1`` lets the loop turn before and
  after the close (Tornado then calls ``on_connection_close``, which a handler
  finishing at once does not get).
- ``/a/close-callback``: waits until the callback it gave
  ``stream.set_close_callback()`` runs (its client left).
- ``/a/fileno``: what ``stream.fileno()`` and ``stream.socket`` give.
- ``/ws/boom`` and ``/ws/aboom``: a WebSocketHandler whose ``on_message``
  raises (plain and coroutine); ``/ws/open-boom`` raises in ``open``;
  ``/ws/close-in-prepare`` closes the stream before the handshake is answered.

``application`` is served by ``qactuar tornado_longpoll:application``, its
probe directory from ``TORNADO_PROBE_DIR``; tests serving it in a thread call
``make_app``.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import uuid
from typing import Any

import tornado.locks
import tornado.util
import tornado.web
import tornado.websocket

# How long /a/watch waits for its client to leave before it answers.
WATCH_LIMIT = 30.0


class MessageBuffer:
    """The demo's buffer, counting the polls that wait on it."""

    def __init__(self) -> None:
        self.cond = tornado.locks.Condition()
        self.cache: list[dict[str, str]] = []
        self.waiting = 0

    def get_messages_since(self, cursor: str | None) -> list[dict[str, str]]:
        results = []
        for msg in reversed(self.cache):
            if msg["id"] == cursor:
                break
            results.append(msg)
        results.reverse()
        return results

    def add_message(self, message: dict[str, str]) -> None:
        self.cache.append(message)
        self.cond.notify_all()


class MessageNewHandler(tornado.web.RequestHandler):
    def initialize(self, buffer: MessageBuffer) -> None:
        self.buffer = buffer

    def post(self) -> None:
        message = {"id": str(uuid.uuid4()), "body": self.get_argument("body")}
        self.write(message)
        self.buffer.add_message(message)


class MessageUpdatesHandler(tornado.web.RequestHandler):
    """The demo's long poll, as written there."""

    def initialize(self, buffer: MessageBuffer) -> None:
        self.buffer = buffer

    async def post(self) -> None:
        cursor = self.get_argument("cursor", None)
        messages = self.buffer.get_messages_since(cursor)
        while not messages:
            self.wait_future = self.buffer.cond.wait()
            self.buffer.waiting += 1
            try:
                await self.wait_future
            except asyncio.CancelledError:
                return
            finally:
                self.buffer.waiting -= 1
            messages = self.buffer.get_messages_since(cursor)
        if self.request.connection.stream.closed():  # type: ignore[attr-defined]
            return
        self.write(dict(messages=messages))

    def on_connection_close(self) -> None:
        self.wait_future.cancel()


class WaitingHandler(tornado.web.RequestHandler):
    def initialize(self, buffer: MessageBuffer) -> None:
        self.buffer = buffer

    def get(self) -> None:
        self.write({"waiting": self.buffer.waiting})


class WatchHandler(tornado.web.RequestHandler):
    def initialize(self, probe_dir: str) -> None:
        self.probe_dir = probe_dir

    def _record(self, name: str) -> None:
        """``stream.closed()`` now, in the file ``name`` (written whole: rename)."""
        path = os.path.join(self.probe_dir, name)
        with open(path + ".tmp", "w") as fh:
            fh.write(repr(self.request.connection.stream.closed()))  # type: ignore[attr-defined]
        os.replace(path + ".tmp", path)

    async def get(self) -> None:
        self.gone = tornado.locks.Event()
        self._record("waiting")
        try:
            await self.gone.wait(timeout=datetime.timedelta(seconds=WATCH_LIMIT))
        except tornado.util.TimeoutError:
            self._record("timeout")
        self._record("after")
        if self.request.connection.stream.closed():  # type: ignore[attr-defined]
            return
        self.write("still here")

    def on_connection_close(self) -> None:
        self._record("on_close")
        self.gone.set()


class CloseStreamHandler(tornado.web.RequestHandler):
    def initialize(self, events: list[str]) -> None:
        self.events = events

    async def get(self) -> None:
        linger = bool(self.get_argument("linger", None))
        if self.get_argument("after_head", None):
            self.set_header("Content-Type", "text/plain")
            self.write("first chunk\n")
            await self.flush()
        elif linger:
            await asyncio.sleep(0)
        self.request.connection.stream.close()  # type: ignore[attr-defined]
        if linger:
            await asyncio.sleep(0)  # on_connection_close comes first
        self.write("hello")

    def on_connection_close(self) -> None:
        self.events.append("on_connection_close")


class CloseCallbackHandler(tornado.web.RequestHandler):
    def initialize(self, events: list[str]) -> None:
        self.events = events

    async def get(self) -> None:
        await asyncio.sleep(0)  # Tornado's HTTPServer sets its own close callback first
        gone = tornado.locks.Event()

        def closed() -> None:
            self.events.append("stream close callback")
            gone.set()

        self.request.connection.stream.set_close_callback(closed)  # type: ignore[attr-defined]
        self.events.append("waiting")
        await gone.wait(timeout=datetime.timedelta(seconds=WATCH_LIMIT))


class FilenoHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        stream: Any = self.request.connection.stream  # type: ignore[attr-defined]
        answers = {}
        try:
            answers["fileno"] = repr(stream.fileno())
        except Exception as exc:
            answers["fileno"] = f"{type(exc).__name__}: {exc}"
        try:
            answers["socket"] = repr(type(stream.socket))
        except Exception as exc:
            answers["socket"] = f"{type(exc).__name__}: {exc}"
        self.write(answers)


class BoomHandler(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        raise RuntimeError(f"boom on {message!r}")


class AsyncBoomHandler(tornado.websocket.WebSocketHandler):
    async def on_message(self, message: str | bytes) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(f"async boom on {message!r}")


class OpenBoomHandler(tornado.websocket.WebSocketHandler):
    def open(self) -> None:
        raise RuntimeError("boom in open")


class CloseInPrepareHandler(tornado.websocket.WebSocketHandler):
    def prepare(self) -> None:
        self.request.connection.stream.close()  # type: ignore[attr-defined]


def make_app(probe_dir: str = "", events: list[str] | None = None) -> tornado.web.Application:
    buffer = MessageBuffer()
    shared = {"buffer": buffer}
    return tornado.web.Application([
        (r"/a/message/new", MessageNewHandler, shared),
        (r"/a/message/updates", MessageUpdatesHandler, shared),
        (r"/a/waiting", WaitingHandler, shared),
        (r"/a/watch", WatchHandler, {"probe_dir": probe_dir}),
        (r"/a/close-stream", CloseStreamHandler, {"events": [] if events is None else events}),
        (r"/a/close-callback", CloseCallbackHandler, {"events": [] if events is None else events}),
        (r"/a/fileno", FilenoHandler),
        (r"/ws/boom", BoomHandler),
        (r"/ws/aboom", AsyncBoomHandler),
        (r"/ws/open-boom", OpenBoomHandler),
        (r"/ws/close-in-prepare", CloseInPrepareHandler),
    ])


application = make_app(os.environ.get("TORNADO_PROBE_DIR", ""))
