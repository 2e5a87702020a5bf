"""Where a complete request head leaves the connection for the application.

``HTTPProtocol`` keeps what belongs to the connection: bytes, the order of
pipelined requests, flow control, timeouts. What the application is given
lives here instead: the ASGI scope, built from the head and the connection's
addresses, and the object that runs the call. An HTTP request becomes an
``HTTPCycle``. A request asking to upgrade to ``websocket`` is checked first
(``is_websocket_handshake``, RFC 6455 §4.2.1): a complete handshake becomes a
``WebSocketSession`` that gets every later byte of the connection, unless
``LIMIT_CONCURRENCY`` is reached (503, see ``gate``); any other (no
``Sec-WebSocket-Key``, another version, a POST...) is served as the ordinary
HTTP request it also is, its Upgrade ignored (RFC 9110 §7.8), as Tornado
serves it: the application answers it, and the connection closes after.

When the connection comes from a trusted proxy (``conn.forwarded``), the
scope's ``client``, ``server`` and ``scheme`` are what the request's proxy
headers say (``proxy.resolve``); from any other peer those headers are left
to the application as plain headers, at the cost of one attribute test.

Only the connection's public face is used (``state``, ``client``, ``server``,
``scheme``, ``tls``, ``forwarded``, ``write``, ``pause_reading``, ``close``):
the protocol's bookkeeping stays its own, and the two scopes sit side by
side, so a key added to one is seen beside the other.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..asgi.cycle import HTTPCycle
from ..asgi.types import ASGI_VERSION
from ..http import RequestHead, error_response
from ..proxy import PROXY_HEADER_NAMES, resolve
from ..websocket import HandshakeError, WebSocketSession, check_handshake, offered_subprotocols
from .gate import UNAVAILABLE_HEADERS, over_limit

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

__all__ = ["asgi_address", "http_cycle", "is_websocket_handshake", "websocket_session"]

_name = itemgetter(0)


def asgi_address(addr: Any) -> tuple[str, int] | None:
    """A socket address as the scope's ``client``/``server`` give it; None for a Unix socket."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (str(addr[0]), int(addr[1]))
    return None


def _addresses(
    conn: HTTPProtocol, head: RequestHead
) -> tuple[tuple[str, int] | None, tuple[str, int] | None, str]:
    """(client, server, scheme) of the request: the connection's, or a trusted proxy's word.

    From a trusted proxy, a request without proxy headers costs one pass over
    the header names, in C (the benchmarks' clients are trusted).
    """
    if conn.forwarded and not PROXY_HEADER_NAMES.isdisjoint(map(_name, head.headers)):
        trusted = conn.state.trusted_peers
        assert trusted is not None
        view = resolve(head.headers, conn.client, conn.server, conn.scheme, trusted)
        if view is not None:
            return view
    return conn.client, conn.server, conn.scheme


def http_cycle(conn: HTTPProtocol, head: RequestHead) -> HTTPCycle:
    """The cycle that serves ``head`` on ``conn``; the caller decides when it runs."""
    state = conn.state
    client, server, scheme = _addresses(conn, head)
    root_path = state.root_path
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": head.http_version,
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": head.method,
        "root_path": root_path,
        "path": root_path + head.path if root_path else head.path,
        "raw_path": head.raw_path,
        "query_string": head.query_string,
        "headers": head.headers,
        "state": state.lifespan_state.copy(),
        "extensions": state.http_extensions.copy(),  # its values are read-only
    }
    if conn.tls is not None:
        scope["extensions"]["tls"] = dict(conn.tls)
    return HTTPCycle(
        scope, head, conn, state.date_line, state.server_line, state.default_headers,
        state.tally,
    )


def is_websocket_handshake(head: RequestHead) -> bool:
    """Whether ``head`` (which asks to upgrade to websocket) is a complete handshake.

    One that is not is an HTTP request like any other (RFC 9110 §7.8: a
    server may ignore Upgrade): ``http_cycle`` serves it.
    """
    try:
        check_handshake(head)
    except HandshakeError:
        return False
    return True


def _refuse(
    conn: HTTPProtocol, status: int, reason: str, headers: list[tuple[bytes, bytes]]
) -> None:
    state = conn.state
    conn.pause_reading()
    conn.write(error_response(status, reason, state.date_line, state.server_line, headers))
    conn.close()


def websocket_session(conn: HTTPProtocol, head: RequestHead) -> WebSocketSession | None:
    """The session that takes ``conn`` over, or None if it was refused (503).

    ``head`` is a complete handshake (``is_websocket_handshake``). A refusal
    has been written and the connection is closing.
    """
    state = conn.state
    if state.limit_concurrency and over_limit(state):
        _refuse(conn, 503, "Service Unavailable", UNAVAILABLE_HEADERS)
        return None
    client, server, scheme = _addresses(conn, head)
    root_path = state.root_path
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": head.http_version,
        "server": server,
        "client": client,
        "scheme": "wss" if scheme == "https" else "ws",
        "root_path": root_path,
        "path": root_path + head.path if root_path else head.path,
        "raw_path": head.raw_path,
        "query_string": head.query_string,
        "headers": head.headers,
        "subprotocols": offered_subprotocols(head),
        "state": state.lifespan_state.copy(),
        "extensions": state.ws_extensions.copy(),  # its values are read-only
    }
    if conn.tls is not None:
        scope["extensions"]["tls"] = dict(conn.tls)
    session = WebSocketSession(
        scope, head, conn, state.ws_options, state.date_line, state.server_line
    )
    session.figures = state.tally
    return session
