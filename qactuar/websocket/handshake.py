"""Checking a WebSocket opening handshake before any application sees it (RFC 6455 §4.2.1).

A request that asks to upgrade to ``websocket`` but breaks the handshake rules
is answered by the server: 400 with the reason, or 426 with
``Sec-WebSocket-Version: 13`` for a version it does not speak (§4.4).
"""

from __future__ import annotations

import base64
import binascii

from ..http import RequestHead

__all__ = ["HandshakeError", "check_handshake", "offered_subprotocols"]


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
