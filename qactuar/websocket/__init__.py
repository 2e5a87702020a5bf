"""ASGI websocket events on the ``websockets`` library's sans-I/O protocol."""

from .handshake import HandshakeError, check_handshake, offered_subprotocols
from .session import WebSocketOptions, WebSocketSession

__all__ = [
    "HandshakeError",
    "WebSocketOptions",
    "WebSocketSession",
    "check_handshake",
    "offered_subprotocols",
]
