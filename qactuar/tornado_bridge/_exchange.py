"""One ASGI HTTP request driven through a Tornado `HTTPMessageDelegate`.

This is the part of Tornado's `HTTP1Connection._read_message` that is not
about bytes: call ``headers_received``, feed the body to ``data_received``
piece by piece (waiting on each returned future: flow control for
``@stream_request_body`` handlers), then ``finish``; and while the
application answers, watch for the client going away, which becomes
``on_connection_close``.

Two activities run at once, as on a real socket: the *reader* (a task of
ours) takes ASGI ``receive`` events and feeds the delegate; the ASGI call
itself pumps the response out through ``send``.  Only the reader is ever
cancelled, and it waits on the application's futures through
`asyncio.wait`, so cancelling it never cancels the application's work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from tornado import httputil
from tornado.log import app_log, gen_log

from ._connection import _ASGIConnection
from ._delegates import _GzipRequestDelegate
from ._mount import mount_prefix
from ._options import _ServerOptions
from ._request import read_request
from ._types import Receive, Scope, Send


async def _wait_for(awaitable: Awaitable[None]) -> None:
    """Await the application's future without ever cancelling it."""
    future = asyncio.ensure_future(awaitable)
    if not future.done():
        await asyncio.wait([future])
    future.result()


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
    # Links made by reverse_url/static_url carry the mount when Tornado
    # sees paths relative to it.
    token = mount_prefix.set(head.link_prefix)
    try:
        delegate = target.start_request(connection, connection)
        if options.decompress_request:
            delegate = _GzipRequestDelegate(delegate, options.chunk_size, options.max_body_size)
        reader = asyncio.ensure_future(
            _read_request(connection, delegate, head.start_line, head.headers, receive, options)
        )
    finally:
        mount_prefix.reset(token)
    try:
        await connection.pump()
    finally:
        if not connection.done:
            # The server cancelled this call (its client went away): the
            # handler hears of it as Tornado's would.
            connection.client_gone()
        if not reader.done():
            reader.cancel()
        await asyncio.wait([reader])


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


async def _read_request(
    connection: _ASGIConnection,
    delegate: httputil.HTTPMessageDelegate,
    start_line: httputil.RequestStartLine,
    headers: httputil.HTTPHeaders,
    receive: Receive,
    options: _ServerOptions,
) -> None:
    owes_close = True  # The delegate is owed on_connection_close until finish().
    try:
        ready = delegate.headers_received(start_line, headers)
        if ready is not None:
            await _wait_for(ready)
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > connection.max_body_size:
            raise httputil.HTTPInputError("Content-Length too long")
        received = 0
        chunk_size = options.chunk_size
        more_body = True
        # Once the app has answered (e.g. 401 from a streaming handler's
        # prepare) the rest of the body is nobody's business: stop reading,
        # as Tornado does by closing the connection (the response said so).
        while more_body and not connection.write_finished:
            body, more_body = await _receive_body(connection, receive)
            received += len(body)
            if received > connection.max_body_size:
                raise httputil.HTTPInputError("Body too long")
            for start in range(0, len(body), chunk_size):
                if connection.write_finished:
                    break  # Answered already: the rest is not the app's business.
                ret = delegate.data_received(body[start : start + chunk_size])
                if ret is not None:
                    await _wait_for(ret)
        if not connection.write_finished:
            connection.read_finished = True
            delegate.finish()
            owes_close = False
        # Wait for the response, watching for the client going away.
        while not connection.done:
            message = await receive()
            if message["type"] == "http.disconnect":
                connection.client_gone()
                return
    except _ClientGone:
        connection.abort()
    except _BodyTimeout:
        # Tornado just closes the connection; ASGI cannot, so say why.
        connection.respond_plain(408)
    except httputil.HTTPInputError as exc:
        gen_log.info("Malformed HTTP message from %s: %s", connection.context, exc)
        connection.respond_plain(400)
    except asyncio.CancelledError:
        raise
    except Exception:
        app_log.error("Uncaught exception", exc_info=True)
        connection.respond_plain(500)
    finally:
        if owes_close:
            try:
                delegate.on_connection_close()
            except Exception:
                app_log.error("Uncaught exception", exc_info=True)
