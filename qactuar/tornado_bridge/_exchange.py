"""One ASGI HTTP request driven through a Tornado `HTTPMessageDelegate`.

This is the part of Tornado's `HTTP1Connection._read_message` that is not
about bytes: call ``headers_received``, feed the body to ``data_received``
piece by piece (waiting on each returned future: flow control for
``@stream_request_body`` handlers), then ``finish``; and while the
application answers, watch for the client going away, which becomes
``on_connection_close``.

Two activities run at once, as on a real socket: the *reader* takes ASGI
``receive`` events and feeds the delegate; the ASGI call itself pumps the
response out through ``send``.  The reader starts inline (most requests are
read whole before the application has anything to wait for) and goes on in a
task of ours as soon as it would wait on the application, or, once the
request is in, to watch for the client going away.  Only that task is ever
cancelled, and it waits on the application's futures through `asyncio.wait`,
so cancelling it never cancels the application's work.
"""

from __future__ import annotations

import asyncio

from tornado import httputil
from tornado.log import app_log, gen_log

from ._connection import _ASGIConnection
from ._delegates import _GzipRequestDelegate
from ._mount import mount_prefix
from ._options import _ServerOptions
from ._request import read_request
from ._types import REASON_EXTENSION, Receive, Scope, Send, offers


async def serve_http(
    target: httputil.HTTPServerConnectionDelegate,
    options: _ServerOptions,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one ``http`` scope with ``target`` (an Application or Router)."""
    head, context = read_request(scope, options)
    connection = _ASGIConnection(
        send, context, head.start_line, options.max_body_size, options.body_timeout
    )
    connection.reason_phrase = offers(scope, REASON_EXTENSION)
    # Links made by reverse_url/static_url carry the mount when Tornado
    # sees paths relative to it; handler tasks inherit this context.
    token = mount_prefix.set(head.link_prefix)
    try:
        delegate = target.start_request(connection, connection)
        if options.decompress_request:
            delegate = _GzipRequestDelegate(delegate, options.chunk_size, options.max_body_size)
        reader = _RequestReader(
            connection, delegate, head.start_line, head.headers, receive, options
        )
        try:
            read_whole = await reader.read(inline=True)
        except BaseException:
            connection.abort()
            reader.close_delegate()
            raise
        task = asyncio.ensure_future(reader.watch() if read_whole else reader.read_and_watch())
    finally:
        mount_prefix.reset(token)
    try:
        await connection.pump()
    finally:
        if not connection.done:
            # The server cancelled this call (its client went away): the
            # handler hears of it as Tornado's would.
            connection.client_gone()
        if not task.done():
            task.cancel()
            if reader.owes_close:
                await asyncio.wait([task])  # Its on_connection_close is due now.


async def _receive_body(connection: _ASGIConnection, receive: Receive) -> tuple[bytes, bool]:
    """Next piece of the body: (data, more_body); raises _ClientGone on disconnect."""
    if connection.body_timeout is None:
        message = await receive()
    else:
        try:
            message = await asyncio.wait_for(receive(), connection.body_timeout)
        except TimeoutError:
            gen_log.info("Timeout reading body from %s", connection.context)
            raise _BodyTimeout from None
    if message["type"] == "http.disconnect":
        raise _ClientGone
    return message.get("body", b""), message.get("more_body", False)


class _ClientGone(Exception):
    """The client went away before the request body was in."""


class _BodyTimeout(Exception):
    """The body did not come within ``body_timeout``."""


class _RequestReader:
    """Feeds one request to the delegate, as HTTP1Connection._read_message does."""

    def __init__(
        self,
        connection: _ASGIConnection,
        delegate: httputil.HTTPMessageDelegate,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        receive: Receive,
        options: _ServerOptions,
    ) -> None:
        self._connection = connection
        self._delegate = delegate
        self._start_line = start_line
        self._headers = headers
        self._receive = receive
        self._chunk_size = options.chunk_size
        # The delegate is owed on_connection_close until its finish().
        self.owes_close = True
        self._started = False
        self._length_checked = False
        self._waiting_on: asyncio.Future[None] | None = None
        self._unfed = b""
        self._more_body = True
        self._received = 0

    async def read(self, inline: bool) -> bool:
        """Read on; True once the request is all in (or failed and answered).

        ``inline``: return False instead of waiting on the application (the
        rest is then read beside the pump, so the app's writes go out).
        """
        connection = self._connection
        try:
            return await self._advance(inline)
        except _ClientGone:
            connection.abort()
        except _BodyTimeout:
            # Tornado just closes the connection; ASGI cannot, so say why.
            connection.respond_plain(408)
        except httputil.HTTPInputError as exc:
            gen_log.info("Malformed HTTP message from %s: %s", connection.context, exc)
            connection.respond_plain(400)
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            connection.respond_plain(500)
        self.close_delegate()
        return True

    async def read_and_watch(self) -> None:
        await self.read(inline=False)
        await self.watch()

    async def watch(self) -> None:
        """While the application answers, watch for the client going away."""
        try:
            while not self._connection.done:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self._connection.client_gone()
                    return
        finally:
            self.close_delegate()

    def close_delegate(self) -> None:
        if self.owes_close:
            self.owes_close = False
            try:
                self._delegate.on_connection_close()
            except Exception:
                app_log.error("Uncaught exception", exc_info=True)

    async def _advance(self, inline: bool) -> bool:
        connection, delegate = self._connection, self._delegate
        if not self._started:
            self._started = True
            ready = delegate.headers_received(self._start_line, self._headers)
            if ready is not None:  # A streaming handler's prepare() runs first.
                self._waiting_on = asyncio.ensure_future(ready)
        while True:
            if self._waiting_on is not None:
                if not self._waiting_on.done():
                    if inline:
                        return False
                    await asyncio.wait([self._waiting_on])  # Never cancels it.
                waited, self._waiting_on = self._waiting_on, None
                waited.result()
            if not self._length_checked:
                self._length_checked = True
                length = self._headers.get("Content-Length")
                if length is not None and length.isdigit():
                    if int(length) > connection.max_body_size:
                        raise httputil.HTTPInputError("Content-Length too long")
            if connection.write_finished:
                # Answered already (e.g. 401 from a streaming handler's
                # prepare): the rest of the body is nobody's business. Tornado
                # closes the connection; the response said "close".
                return True
            if self._unfed:
                piece = self._unfed[: self._chunk_size]
                self._unfed = self._unfed[self._chunk_size :]
                fed = delegate.data_received(piece)
                if fed is not None:  # Flow control: nothing more until it is done.
                    self._waiting_on = asyncio.ensure_future(fed)
                continue
            if not self._more_body:
                break
            body, self._more_body = await _receive_body(connection, self._receive)
            self._received += len(body)
            if self._received > connection.max_body_size:
                raise httputil.HTTPInputError("Body too long")
            self._unfed = body
        connection.read_finished = True
        delegate.finish()
        self.owes_close = False
        return True
