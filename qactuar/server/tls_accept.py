"""Each TLS connection from accept through its handshake to its ``HTTPProtocol``.

``TLSAcceptor`` holds an accepted TCP connection through its handshake
(``loop.start_tls``), then hands the TLS transport to its ``HTTPProtocol``.
The server sees the socket from accept on, not only once the handshake is
done: a fork child forked meanwhile closes it too (``on_handshake``), and a
stop aborts handshakes still running. Closing a TLS connection waits for the
client's close_notify for ``SHUTDOWN_TIMEOUT`` at most (Python's default,
30 s, let one idle keep-alive client hold a graceful stop that long).

With PROXY_PROTOCOL the balancer's header comes first, in clear, before the
client's ClientHello: the acceptor closes a peer not in FORWARDED_ALLOW_IPS
at once, reads the header (``ProxyHeaderParser``; a bad one closes the
connection, none complete within HEADER_TIMEOUT too), hands what followed it
to the handshake as early bytes, and gives the header's addresses to the
connection once the handshake is done (``proxied.apply_proxy_header``; the
scheme stays https, the TLS extension is this connection's own).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from ..proxy import ProxyHeader, ProxyHeaderParser, ProxyProtocolError
from .proxied import apply_proxy_header, peer_trusted

if TYPE_CHECKING:
    from .protocol import HTTPProtocol
    from .server import ServerState

__all__ = ["SHUTDOWN_TIMEOUT", "TLSAcceptor"]

#: Seconds closing a TLS connection waits for the client's close_notify (and
#: for what is still buffered to be sent) before the socket is closed anyway.
SHUTDOWN_TIMEOUT = 2.0

logger = logging.getLogger("qt_server")


class _Held(asyncio.Protocol):
    """The TLS transport's protocol until ``start_tls`` returns.

    The TLS layer reads on as soon as the handshake completes, before the
    task awaiting ``start_tls`` runs again; under load a client's request
    often comes in the same read as its last handshake message. Given to
    the HTTP protocol at once, that request would be served before the
    protocol's ``connection_made``: as ``http``, without its addresses, and
    in the fork model by a child writing plain text to the TLS socket. It is
    held here and handed over after ``connection_made``.
    """

    __slots__ = ("data", "eof", "lost")

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class TLSAcceptor(asyncio.Protocol):
    """An accepted TCP connection in its TLS handshake, then ``http``'s."""

    __slots__ = ("state", "http", "transport", "fd", "task", "early", "proxy", "header")

    def __init__(self, state: ServerState, http: HTTPProtocol) -> None:
        self.state = state
        self.http = http
        self.transport: asyncio.Transport | None = None
        self.fd = -1
        self.task: asyncio.Task[None] | None = None
        #: What arrived before start_tls took the transport over.
        self.early = b""
        #: Reads the PROXY header that comes before the handshake (PROXY_PROTOCOL).
        self.proxy: ProxyHeaderParser | None = None
        #: Set once that header is whole.
        self.header: asyncio.Future[ProxyHeader] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self.fd = transport.get_extra_info("socket").fileno()
        state = self.state
        loop = asyncio.get_running_loop()
        if state.proxy_protocol:
            peer = transport.get_extra_info("peername")
            client = peer[:2] if isinstance(peer, tuple) else None
            if not peer_trusted(state, client):
                logger.info("PROXY protocol: %s is not in FORWARDED_ALLOW_IPS; closed", client)
                transport.abort()
                return
            # read on until the header is whole (data_received)
            self.proxy = ProxyHeaderParser()
            self.header = loop.create_future()
        else:
            # asyncio honours this; uvloop starts reading once this returns, and
            # what it reads before start_tls runs is kept (data_received)
            transport.pause_reading()
        state.handshaking.add(self)
        if state.on_handshake is not None:
            state.on_handshake(self.fd, True)
        self.task = loop.create_task(self._handshake(transport))

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if self.proxy is not None:
            self._read_proxy_header(transport, self.proxy, data)
            return
        self.early += data
        transport.pause_reading()

    def _read_proxy_header(
        self, transport: asyncio.Transport, reader: ProxyHeaderParser, data: bytes
    ) -> None:
        try:
            header = reader.feed(data)
        except ProxyProtocolError as exc:
            # closed unanswered: the peer is a balancer, and what follows is
            # not known to be TLS
            logger.info("PROXY protocol from %s: %s; closed", self._peer(), exc)
            self.proxy = None
            transport.abort()
            return
        if header is None:
            return
        self.proxy = None
        self.early = header.rest
        transport.pause_reading()
        assert self.header is not None
        if not self.header.done():
            self.header.set_result(header)

    def _peer(self) -> Any:
        return self.transport.get_extra_info("peername") if self.transport else None

    async def _handshake(self, transport: asyncio.Transport) -> None:
        tls = self.state.tls
        assert tls is not None
        loop = asyncio.get_running_loop()
        header = None
        if self.header is not None:
            try:
                header = await asyncio.wait_for(self.header, self.state.header_timeout)
            except BaseException as exc:  # no header in time, a stop
                if isinstance(exc, TimeoutError):
                    logger.info("PROXY protocol from %s: no header in time; closed", self._peer())
                transport.abort()
                self._forget()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
        if self.early:
            # runs once start_tls below has put its protocol in place (it
            # does so before its first await), before that protocol reads
            loop.call_soon(self._replay, transport)
        held = _Held()
        try:
            tls_transport = await loop.start_tls(
                transport,
                held,
                tls.context,
                server_side=True,
                ssl_handshake_timeout=tls.handshake_timeout,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
        except BaseException as exc:  # a failed handshake, a timeout, a client gone, a stop
            transport.abort()
            self._forget()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._forget()
        if tls_transport is None or tls_transport.is_closing() or held.lost:
            transport.abort()
            return
        # the same step as _forget: no fork between it and HTTPProtocol's on_open
        tls_transport.set_protocol(self.http)
        self.http.connection_made(tls_transport)
        if header is not None:
            # before any byte reaches the connection (this same step), and
            # before a fork child or the relay's scope could read it
            apply_proxy_header(self.http, header)
        for data in held.data:
            self.http.data_received(data)
        if held.eof:
            self.http.eof_received()

    def _replay(self, transport: asyncio.Transport) -> None:
        """Give the TLS protocol what this one read before it took over."""
        data, self.early = self.early, b""
        protocol = transport.get_protocol()
        if protocol is self or transport.is_closing():
            return  # start_tls failed before taking over: it aborts the connection
        if not hasattr(protocol, "buffer_updated"):
            cast(asyncio.Protocol, protocol).data_received(data)
            return
        buffered = cast(asyncio.BufferedProtocol, protocol)
        while data:
            buf = memoryview(buffered.get_buffer(len(data)))
            n = min(len(buf), len(data))
            buf[:n] = data[:n]
            buffered.buffer_updated(n)
            data = data[n:]

    def _forget(self) -> None:
        state = self.state
        if self in state.handshaking:
            state.handshaking.discard(self)
            if state.on_handshake is not None:
                state.on_handshake(self.fd, False)

    def abort(self) -> None:
        """Drop the connection (the server stops) unless its handshake is done."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        # gone before start_tls took the transport over (uvloop reads, and so
        # sees an EOF, before that): start_tls would wait for a handshake on a
        # closed transport, and the number, soon another file's, stay listed
        self._forget()
        if self.task is not None:
            self.task.cancel()
