"""One HTTP request ⇄ one ASGI application call.

``HTTPCycle`` owns the ASGI side of a request: the scope, ``receive()`` and
``send()``. It checks message order, turns an application error into a 500
(or a closed connection once the response has begun), and hands the bytes
that the HTTP layer frames to its ``Connection``, which is all it knows of
sockets: the same cycle runs in every process model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

from ..http import LocalProtocolError, RequestHead, Response, error_response, informational
from ..logs import printable
from .spool import BodySpool
from .types import ASGIApp, Message, Scope

if TYPE_CHECKING:
    from ..admin.figures import Tally

__all__ = ["APP_FAILURES", "AppLost", "ClientDisconnected", "Connection", "HTTPCycle"]

access_logger = logging.getLogger("qt_access")
exception_logger = logging.getLogger("qt_exception")

_DISCONNECT: Message = {"type": "http.disconnect"}

#: What an application raises that fails its request, and only its request:
#: ``SystemExit`` and ``KeyboardInterrupt`` from app code included (every
#: model handles the real SIGINT with a signal handler, never by raising it
#: inside a cycle). ``CancelledError`` and ``GeneratorExit`` stay the server's.
APP_FAILURES = (Exception, SystemExit, KeyboardInterrupt)


class ClientDisconnected(OSError):
    """``send()`` was called after the client went away (ASGI spec 2.4)."""


class AppLost(Exception):
    """Raised by a stand-in for an application that ran elsewhere and was lost.

    The fork model's relay raises it when the child running the real
    application crashed (502), ran out of time (504) or raised (500, logged
    in the child). The cause was logged where it happened, so the cycle logs
    nothing more: it answers ``status`` if no response has begun, else
    abandons the response (the connection closes).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Connection(Protocol):
    """What a cycle needs from the connection it runs on."""

    def write(self, data: bytes) -> None: ...

    def write_soon(self, data: bytes) -> None:
        """``data`` written before the loop's turn ends, with pieces written so meanwhile."""
        ...

    async def drain(self) -> None: ...

    def resume_reading(self) -> None: ...

    def cycle_done(self, cycle: HTTPCycle) -> None: ...


class HTTPCycle:
    __slots__ = (
        "scope",
        "head",
        "response",
        "conn",
        "body",
        "body_size",
        "body_complete",
        "spool",
        "disconnected",
        "half_closed",
        "started",
        "done",
        "_waiters",
        "_body_sent",
        "_expect_100",
        "_start_time",
        "_error_lines",
        "figures",
        "received",
    )

    def __init__(
        self,
        scope: Scope,
        head: RequestHead,
        conn: Connection,
        date: bytes,
        server: bytes,
        defaults: tuple[tuple[bytes, bytes], ...] = (),
        figures: Tally | None = None,
    ) -> None:
        self.scope = scope
        self.head = head
        self.conn = conn
        self.response = Response(
            head.method, head.http_version, head.keep_alive, date, server, defaults
        )
        self._error_lines = (date, server)
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_complete = not head.has_body
        self.response.request_complete = self.body_complete
        #: Set when the body is held whole before the app runs (the fork
        #: model's parent): it goes there, and receive() reads it from there.
        self.spool: BodySpool | None = None
        self.disconnected = False
        #: The client shut down its sending side (its FIN) after this request:
        #: the response can still be written, but the client may as well be
        #: gone, so a receive() after the body says http.disconnect.
        self.half_closed = False
        self.started = False
        #: The response is complete (or abandoned): the connection may go on.
        self.done = False
        #: One future per receive() call waiting for body, end or disconnect.
        self._waiters: list[asyncio.Future[None]] = []
        #: The last ``http.request`` event (``more_body`` false) was handed out.
        self._body_sent = False
        self._expect_100 = head.expect_continue
        self._start_time = time.monotonic()
        #: The process's admin figures (ADMIN_ENABLED), else None.
        self.figures = figures
        #: Request body bytes received (the admin figures' bytes in).
        self.received = 0

    # fed by the connection ------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        self.received += len(data)
        if self.spool is not None:
            self.spool.write(data)
            return
        self.body.append(data)
        self.body_size += len(data)
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self.response.request_complete = True
        self._wake()
        if self.spool is not None:
            self.spool.end(True)

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()
        if self.spool is not None and not self.body_complete:
            self.spool.end(False)

    @property
    def expects_continue(self) -> bool:
        """The client waits for ``100 Continue`` before it sends the body."""
        return self._expect_100 and not self.body_complete

    def send_continue(self) -> None:
        """Answer ``Expect: 100-continue`` now (once, and only before a response)."""
        if self._expect_100:
            self._expect_100 = False
            if not self.started:
                self.conn.write(informational(100))

    def finish_unanswered(self) -> None:
        """End a cycle no application ran for (its body never came): the connection
        answers what it must (a 413 or a 408 it noted) or closes."""
        if not self.done:
            self._finish(log=False)

    def client_finished(self) -> None:
        """The client's FIN came after this whole request (``shutdown(SHUT_WR)``).

        A client that half-closes still reads its answer, and one that closed
        for good cannot be told apart until a write fails: ``send()`` goes on
        writing, while an app that listens for ``http.disconnect`` (a long
        poll, Django's disconnect watcher) hears it as it did before, when
        the FIN closed the connection; once it has, the client counts as
        gone (``send()`` raises ``ClientDisconnected``).
        """
        self.half_closed = True
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            waiters.clear()

    # the ASGI side ---------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except APP_FAILURES as exc:
            # sys.exit() or KeyboardInterrupt from the app's code (argparse on
            # user input, say) is this request's failure, never the process's:
            # a real Ctrl-C reaches every model through a signal handler
            self._app_failed(exc)
        except BaseException as exc:  # CancelledError: the server's, not the app's
            self._app_failed(exc)
            raise
        else:
            if not self.started and (self.disconnected or self.half_closed):
                self._finish()  # the client left; the app had no one to answer
            elif not self.started:
                exception_logger.error(
                    "ASGI app returned without starting a response for %s %s",
                    self.head.method,
                    printable(self.head.path),
                )
                self._send_error(500, "Internal Server Error")
            elif not self.response.complete:
                if self.disconnected or self.half_closed:
                    # the client left mid-response and the app stopped: no error
                    exception_logger.debug(
                        "Client left %s %s before the response was complete",
                        self.head.method,
                        printable(self.head.path),
                    )
                else:
                    exception_logger.error(
                        "ASGI app returned with its response body incomplete for %s %s",
                        self.head.method,
                        printable(self.head.path),
                    )
                self.response.abort()
                self._finish()
        finally:
            if not self.done:
                self._finish()

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, AppLost):
            if self.done:
                return
            if not self.started and not self.disconnected:
                self._send_error(exc.status, exc.reason)
            else:
                self.response.abort()
                self._finish()
            return
        if isinstance(exc, APP_FAILURES) and not (
            isinstance(exc, ClientDisconnected) and self.disconnected
        ):
            exception_logger.error(
                "Exception in ASGI application for %s %s",
                self.head.method,
                printable(self.head.path),
                exc_info=exc,
            )
        if self.done:
            return
        if not self.started and not self.disconnected:
            self._send_error(500, "Internal Server Error")
        else:
            self.response.abort()
            self._finish()

    def _send_error(self, status: int, reason: str) -> None:
        self.started = True
        self.response.status = status
        self.response.keep_alive = False
        self.response.complete = True
        if not self.disconnected:
            self.conn.write(error_response(status, reason, *self._error_lines))
        self._finish()

    def answer(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, log: bool = True
    ) -> None:
        """The server answers this request itself, at once: no application runs.

        For the health check and for load shedding; ``log`` False keeps the
        answer out of the access log.
        """
        self.started = True
        self._expect_100 = False
        self.response.start(status, headers)
        self.conn.write(self.response.body(body, False))
        self._finish(log)

    def _finish(self, log: bool = True) -> None:
        self.done = True
        self._wake()  # a receive() waiting for http.disconnect returns now
        figures = self.figures
        if figures is not None and self.started:  # answered (in whole or part): counted
            head, response = self.head, self.response
            figures.record(
                head.path,
                head.method,
                response.status,
                time.monotonic() - self._start_time,
                self.received,
                response.body_bytes,
            )
        if log and access_logger.isEnabledFor(logging.INFO):
            self._log_access()
        self.conn.cycle_done(self)

    def _log_access(self) -> None:
        client = self.scope.get("client")
        head = self.head
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d %d %.1fms',
            f"{client[0]}:{client[1]}" if client else "-",
            head.method,
            head.raw_path.decode("latin-1")
            + ("?" + head.query_string.decode("latin-1") if head.query_string else ""),
            head.http_version,
            self.response.status,
            self.response.body_bytes,
            (time.monotonic() - self._start_time) * 1000,
        )

    async def _wait(self) -> None:
        """Until the next _wake(). Each caller has its own future, so that
        cancelling one receive() (as Starlette's is_disconnected() does)
        leaves any other one waiting."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    async def receive(self) -> Message:
        if self.disconnected or self.done:
            return _DISCONNECT
        if self._body_sent:
            return await self._disconnect(True)
        spool = self.spool
        if spool is not None:  # held whole: no waiting, no flow control
            data = spool.read()
            self._body_sent = not spool.left
            return {"type": "http.request", "body": data, "more_body": bool(spool.left)}
        if not self.body and not self.body_complete:
            self.send_continue()
            while not self.body and not self.body_complete and not self.disconnected:
                self.conn.resume_reading()
                await self._wait()
            if self.disconnected and not self.body:
                return _DISCONNECT
        self._expect_100 = False
        body = self.body
        if len(body) == 1:
            data = body[0]
        else:
            data = b"".join(body)
        body.clear()
        self.body_size = 0
        self.conn.resume_reading()
        if self.body_complete:
            self._body_sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return {"type": "http.request", "body": data, "more_body": True}

    async def _disconnect(self, taken: bool) -> Message:
        """The whole body was delivered: the next event is http.disconnect, once
        the client goes or the response is complete (ASGI spec 2.4)."""
        while not self.disconnected and not self.done and not self.half_closed:
            await self._wait()
        if taken and not self.done:
            # told that its client is gone (a FIN), the app may take it so:
            # send() raises from now on, as after a real disconnect
            self.disconnected = True
        return _DISCONNECT

    async def relay_receive(self) -> Message:
        """``receive`` for a relay that passes the messages on ahead of its app
        (the fork model): an ``http.disconnect`` it takes after the client's FIN
        does not count the client as gone here; the app that takes it, in the
        relay's child, counts it so there."""
        if self._body_sent and not self.disconnected and not self.done:
            return await self._disconnect(False)
        return await self.receive()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("ASGI sent 'http.response.body' before 'http.response.start'")
            if self.done:
                if self.disconnected:
                    raise ClientDisconnected("Client disconnected")
                raise RuntimeError("ASGI sent 'http.response.body' after the response completed")
            if self.disconnected:
                raise ClientDisconnected("Client disconnected")
            more = message.get("more_body", False)
            try:
                data = self.response.body(message.get("body", b""), more)
            except LocalProtocolError as exc:
                raise RuntimeError(str(exc)) from None
            if not more:
                if data:
                    self.conn.write(data)
                self._finish()
            else:
                if data:
                    self.conn.write_soon(data)  # (pieces sent in a row: one write)
                await self.conn.drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI sent 'http.response.start' twice")
            if self.disconnected:
                raise ClientDisconnected("Client disconnected")
            try:
                self.response.start(
                    message["status"], message.get("headers", ()), message.get("reason")
                )
            except LocalProtocolError as exc:
                raise RuntimeError(str(exc)) from None
            self.started = True
            self._expect_100 = False
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in an HTTP cycle")
