"""The WebSocket opening handshake: checked before any app sees it, answered once one accepts.

``check_handshake`` says whether a request that asks to upgrade to
``websocket`` is a complete handshake (RFC 6455 §4.2.1); one that is not is
served as the ordinary HTTP request it also is (``server/handoff.py``: RFC
9110 §7.8 lets a server ignore Upgrade), so the application answers it, as
Tornado's do (400, or 426 with ``Sec-WebSocket-Version: 13``, §4.4).
``HandshakeError`` names what is missing.

When the application accepts, ``accept_handshake`` builds the ``websockets``
library's ``ServerProtocol`` for the connection and its 101 response
(§4.2.2): subprotocol and permessage-deflate negotiated, qactuar's Date and
Server lines and the application's headers added.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ..http import LocalProtocolError, RequestHead, check_field
from .deflate import ExactInflateLimit, wire_slack
from .messages import ServerProtocol

__all__ = ["HandshakeError", "accept_handshake", "check_handshake", "offered_subprotocols"]


class HandshakeError(Exception):
    def __init__(self, status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",") if token.strip()]


def check_handshake(head: RequestHead) -> None:
    """Raise ``HandshakeError`` unless ``head`` is a valid WebSocket upgrade."""
    if head.method != "GET":
        raise HandshakeError(400, "A WebSocket upgrade must use GET", [(b"allow", b"GET")])
    if head.http_version != "1.1":
        raise HandshakeError(400, "A WebSocket upgrade needs HTTP/1.1", [])
    if head.has_body:
        raise HandshakeError(400, "A WebSocket upgrade must not carry a body", [])
    connection: list[bytes] = []
    keys: list[bytes] = []
    versions: list[bytes] = []
    for name, value in head.headers:
        if name == b"connection":
            connection.extend(_tokens(value))
        elif name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            versions.append(value.strip())
    if b"upgrade" not in connection:
        raise HandshakeError(400, "Connection header lacks 'upgrade'", [])
    unsupported = HandshakeError(
        426, "Unsupported Sec-WebSocket-Version", [(b"sec-websocket-version", b"13")]
    )
    if versions and versions != [b"13"]:
        raise unsupported  # a client speaking another version learns which we speak
    if len(keys) != 1:
        raise HandshakeError(400, "Missing or repeated Sec-WebSocket-Key", [])
    if not versions:
        raise unsupported
    try:
        raw = base64.b64decode(keys[0], validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Invalid Sec-WebSocket-Key", [])


def offered_subprotocols(head: RequestHead) -> list[str]:
    offered: list[str] = []
    for name, value in head.headers:
        if name == b"sec-websocket-protocol":
            offered.extend(t.strip() for t in value.decode("latin-1").split(",") if t.strip())
    return offered


def accept_handshake(
    head: RequestHead,
    subprotocol: Subprotocol | None,
    app_headers: Iterable[tuple[bytes, bytes]],
    *,
    compression: bool,
    max_message_bytes: int,
    date: bytes,
    server: bytes,
) -> tuple[ServerProtocol, Response]:
    """A protocol past the handshake of ``head``, and the response it is to send.

    ``subprotocol`` is the application's choice (used only if the client
    offered it); ``date`` and ``server`` are the server's own header lines,
    empty when disabled. A header the application gives that could not go
    into a response (``check_field``) raises ``RuntimeError``, as the same
    header in ``http.response.start`` does. The response is not sent yet: a status other than
    101 means the library refused the handshake, and it then carries none of
    qactuar's or the application's headers.
    """
    protocol = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if compression else None,
        select_subprotocol=lambda _, offered: subprotocol if subprotocol in offered else None,
        max_size=max_message_bytes + wire_slack(max_message_bytes),
    )
    # The protocol expects to read the handshake from the stream. Our
    # parser has read it already (within MAX_HEADER_BYTES, which may be
    # more than the library's 8 kB line limit: a big Cookie): a bare
    # request line moves the protocol past it, and the real headers go
    # to accept() as a Request, which negotiates extensions and subprotocol.
    protocol.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    protocol.events_received()
    headers = Headers()
    for field, content in head.headers:
        headers[field.decode("latin-1")] = content.decode("latin-1")
    target = head.raw_path + (b"?" + head.query_string if head.query_string else b"")
    response = protocol.accept(Request(target.decode("latin-1"), headers))
    slack = wire_slack(max_message_bytes)
    protocol.extensions = [ExactInflateLimit(ext, slack) for ext in protocol.extensions]
    if response.status_code != 101:
        return protocol, response
    # the library's own Server header (if any) gives way to ours, as on
    # every other qactuar response; Date follows DATE_HEADER
    for line in ("Server", "Date"):
        if line in response.headers:
            del response.headers[line]
    if date:
        response.headers["Date"] = date.partition(b":")[2].strip().decode("latin-1")
    if server:
        response.headers["Server"] = server.partition(b":")[2].strip().decode("latin-1")
    for name, value in app_headers:
        try:
            check_field(name, value)  # as every response's fields are
        except LocalProtocolError as exc:
            raise RuntimeError(str(exc)) from None
        response.headers[name.decode("latin-1")] = value.decode("latin-1")
    return protocol, response
