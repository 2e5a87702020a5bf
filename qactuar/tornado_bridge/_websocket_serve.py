"""Serving one ASGI ``websocket`` scope with a Tornado application (see `_websocket`)."""

from __future__ import annotations

import asyncio

from tornado import httputil
from tornado.log import gen_log

from ._mount import mount_prefix
from ._options import _ServerOptions
from ._request import read_request
from ._types import Receive, Scope, Send
from ._websocket import _CLOSE_WAIT, _ASGIWebSocketConnection


async def serve_websocket(
    target: httputil.HTTPServerConnectionDelegate,
    options: _ServerOptions,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one ``websocket`` scope: the handshake as a GET, then messages."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    head, context = read_request(scope, options)
    headers = head.headers
    # HTTP/2 websockets (extended CONNECT) have no Upgrade headers; Tornado's
    # handler checks them.
    headers.setdefault("Upgrade", "websocket")
    if "upgrade" not in headers.get("Connection", "").lower():
        headers["Connection"] = "Upgrade"
    connection = _ASGIWebSocketConnection(send, receive, context, head.start_line, scope)
    token = mount_prefix.set(head.link_prefix)
    try:
        delegate = target.start_request(connection, connection)
        ready = delegate.headers_received(head.start_line, headers)
        if ready is not None:
            await ready
        delegate.finish()
    except httputil.HTTPInputError as exc:
        gen_log.info("Malformed HTTP message from %s: %s", context, exc)
        connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 400, "Bad Request"),
            httputil.HTTPHeaders({"Content-Length": "0"}),
        )
        connection.finish()
    finally:
        mount_prefix.reset(token)
    try:
        await connection.pump()
        if connection.accepted and not connection.websocket_over.is_set():
            # Closed by the handler: let the client answer, as Tornado does.
            try:
                await asyncio.wait_for(connection.websocket_over.wait(), _CLOSE_WAIT)
            except TimeoutError:
                pass
    finally:
        if not connection.done:
            connection.client_gone()
