"""A connection's side of proxies: judging the peer, reading a PROXY header.

``HTTPProtocol`` calls ``judge_peer`` once as a connection opens and, with
PROXY_PROTOCOL, ``read_proxy_header`` with its first bytes; the parsing
itself is sans-I/O in ``qactuar.proxy``. Over TLS the header comes before
the handshake: ``TLSAcceptor`` judges the peer (``peer_trusted``), reads the
header and, once the handshake is done, gives it to the connection with
``apply_proxy_header``, as ``read_proxy_header`` does here. Only the
connection's public face is used (``state``, ``client``, ``server``, ``scheme``, ``forwarded``,
``proxy_header``, ``close``). Per-request proxy headers are read in
``handoff``, where the scope is built.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..proxy import ProxyHeader, ProxyHeaderParser, ProxyProtocolError

if TYPE_CHECKING:
    from .protocol import HTTPProtocol
    from .server import ServerState

__all__ = ["apply_proxy_header", "judge_peer", "peer_trusted", "read_proxy_header"]

logger = logging.getLogger("qt_server")


def peer_trusted(state: ServerState, client: tuple[str, int] | None) -> bool:
    """The socket's peer is in FORWARDED_ALLOW_IPS (``client`` None: a Unix socket)."""
    trusted = state.trusted_peers
    assert trusted is not None
    # a Unix-socket peer has no address: "unix" in FORWARDED_ALLOW_IPS speaks for it
    return trusted.unix if client is None else trusted.trusts(client[0])


def judge_peer(conn: HTTPProtocol) -> None:
    """Set ``conn.forwarded`` and, with PROXY_PROTOCOL, expect a header or close."""
    state = conn.state
    client = conn.client
    is_trusted = peer_trusted(state, client)
    conn.forwarded = state.proxy_headers and is_trusted
    # over TLS the acceptor read the header before the handshake, and closed
    # an untrusted peer's connection then
    if state.proxy_protocol and state.tls is None:
        if is_trusted:
            conn.proxy_header = ProxyHeaderParser()
        else:
            logger.info("PROXY protocol: %s is not in FORWARDED_ALLOW_IPS; closed", client)
            conn.close()


def read_proxy_header(conn: HTTPProtocol, reader: ProxyHeaderParser, data: bytes) -> bytes:
    """Consume the PROXY header; return the bytes after it (b"" until it is whole).

    A bad header closes the connection, unanswered: what follows is not
    known to be HTTP, and the peer is a balancer, not a browser.
    """
    try:
        header = reader.feed(data)
    except ProxyProtocolError as exc:
        logger.info("PROXY protocol from %s: %s; closed", conn.client, exc)
        conn.proxy_header = None
        conn.close()
        return b""
    if header is None:
        return b""
    conn.proxy_header = None
    apply_proxy_header(conn, header)
    return header.rest


def apply_proxy_header(conn: HTTPProtocol, header: ProxyHeader) -> None:
    """What a complete PROXY header says about ``conn``: its client, server and scheme."""
    if header.addresses is not None:
        conn.client, conn.server = header.addresses
        # the HTTP stream is the client's own: its proxy headers count only
        # if that client is itself a trusted proxy
        conn.forwarded = conn.state.proxy_headers and peer_trusted(conn.state, conn.client)
    if header.tls:
        conn.scheme = "https"  # the balancer took the client's TLS
