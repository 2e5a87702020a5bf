"""The asyncio server core every process model drives.

``Server(app, config)`` binds (or takes) listening sockets, runs lifespan
startup before the first accept, serves HTTP connections with
``HTTPProtocol``, and on ``should_exit`` stops accepting, lets in-flight
requests finish for up to ``GRACEFUL_TIMEOUT`` and closes the rest.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from ..admin.figures import Recorder, Tally, Totals, route_prefixes
from ..asgi.cycle import HTTPCycle
from ..asgi.extensions import PROCESS_MODEL, scope_extensions
from ..asgi.types import ASGIApp
from ..config import Config
from ..lifespan import LifespanRunner
from ..proxy import TrustedPeers
from ..websocket import WebSocketOptions
from .accept import DropLog, Listener
from .gate import encode_headers
from .protocol import IDLE_GRACE, HTTPProtocol
from .sockets import bind_sockets, describe, remove_unix_socket
from .stalls import Stalls
from .tls import ServerTLS, server_tls
from .tls_accept import TLSAcceptor

__all__ = ["Server", "ServerState"]

logger = logging.getLogger("qt_server")


class ServerState:
    """What every connection of one server shares; read on the request path."""

    def __init__(self, app: ASGIApp, config: Config) -> None:
        self.app = app
        #: Connections whose client is not reading (SEND_TIMEOUT): see stalls.py.
        self.stalls = Stalls(config.SEND_TIMEOUT)
        #: TLS set-up, once the server has loaded it (``Server.ssl_context``).
        self.tls: ServerTLS | None = None
        self.connections: set[HTTPProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.lifespan_state: dict[str, Any] = {}
        self.shutting_down = False
        #: When set, called as a connection opens (after it joins ``connections``).
        self.on_open: Callable[[HTTPProtocol], None] | None = None
        #: When set, called as a connection closes.
        self.on_close: Callable[[HTTPProtocol], None] | None = None
        #: TLS connections accepted whose handshake is still running.
        self.handshaking: set[TLSAcceptor] = set()
        #: When set, called with a socket's descriptor as its TLS handshake
        #: starts (True) and ends (False), before ``on_open`` if it succeeded.
        self.on_handshake: Callable[[int, bool], None] | None = None
        #: Request cycles run by ``run_task`` that have finished.
        self.requests_served = 0
        #: When set, called after each of those (a prefork worker counts to
        #: MAX_REQUESTS with it).
        self.on_request_done: Callable[[], None] | None = None
        #: Starts the application for a cycle; a task on this loop unless a
        #: process model puts its own dispatcher here (the fork model forks).
        self.run_cycle: Callable[[HTTPCycle], None] = self.run_task
        #: The process model, told to apps in the scope (``qactuar.process_model``).
        self.process_model = config.MODEL
        #: ``scope["extensions"]`` of every HTTP / websocket request (copied per request).
        self.http_extensions, self.ws_extensions = scope_extensions(config.MODEL)
        #: Requests in flight in this process, for LIMIT_CONCURRENCY: the app
        #: tasks here, unless a process model counts its own (fork: children).
        self.in_flight: Callable[[], int] = lambda: len(self.tasks)
        #: Per-request figures for the admin socket (ADMIN_ENABLED), else None:
        #: ``HTTPCycle._finish`` and the WebSocket session record into it.
        self.figures: Recorder | None = (
            Recorder(route_prefixes(app)) if config.ADMIN_ENABLED else None
        )
        #: What the request path records into (``figures``).
        self.tally: Tally | None = self.figures
        self.date_line = b""
        self.apply(config)
        #: What ``tick`` reads the clock from (a test drives time by hand).
        self.monotonic: Callable[[], float] = time.monotonic
        #: Coarse monotonic clock, advanced by the sweep; used for deadlines.
        self.clock = self.monotonic()
        self._second = 0
        self.tick()

    def apply(self, config: Config) -> None:
        """Derive from ``config`` what the request path reads (at start, and when
        the admin socket changes the config: see admin/live.py). A connection
        reads these as it goes: timeouts from its next deadline, ``limits``
        from its next connection's parser, WebSocket options from the next
        session; a request in flight keeps what it started with."""
        self.limits = config.limits
        self.ws_options = WebSocketOptions(
            compression=config.WS_COMPRESSION,
            max_message_bytes=config.WS_MAX_MESSAGE_BYTES,
            max_queue=config.WS_MAX_QUEUE,
            ping_interval=config.WS_PING_INTERVAL,
            ping_timeout=config.WS_PING_TIMEOUT,
        )
        self.root_path = config.ROOT_PATH.rstrip("/")
        self.header_timeout = config.HEADER_TIMEOUT
        self.keep_alive_timeout = config.KEEP_ALIVE_TIMEOUT
        self.body_timeout = config.BODY_TIMEOUT
        self.stalls.timeout = config.SEND_TIMEOUT
        #: Proxies whose word about the client is taken (FORWARDED_ALLOW_IPS);
        #: None when neither proxy headers nor the PROXY protocol are on.
        self.trusted_peers: TrustedPeers | None = None
        if config.PROXY_HEADERS or config.PROXY_PROTOCOL:
            self.trusted_peers = TrustedPeers(config.FORWARDED_ALLOW_IPS)
        self.proxy_headers = config.PROXY_HEADERS
        self.proxy_protocol = config.PROXY_PROTOCOL
        self.server_line = b"server: qactuar\r\n" if config.SERVER_HEADER else b""
        # HEADERS, HEALTH_PATH, LIMIT_CONCURRENCY: see gate.py
        self.default_headers, server_line = encode_headers(config.HEADERS)
        if server_line is not None:
            self.server_line = server_line
        self.health_path = config.HEALTH_PATH
        self.limit_concurrency = config.LIMIT_CONCURRENCY
        self._date_enabled = config.DATE_HEADER
        if not self._date_enabled:
            self.date_line = b""

    def tick(self) -> None:
        """Advance the clock and, once a second, the Date line."""
        self.clock = self.monotonic()
        now = int(time.time())
        if now != self._second and self._date_enabled:
            self._second = now
            self.date_line = b"date: %s\r\n" % email.utils.formatdate(now, usegmt=True).encode()

    def totals(self, websockets_elsewhere: int = 0) -> Totals:
        """This process's figures now (empty when ADMIN_ENABLED is off).

        Gauges are read here, not counted per request: ``in_flight`` is
        ``in_flight()`` (app calls running; the fork model's children and
        waiting requests) less the open WebSockets, ``http_connections`` the
        open connections less those. ``websockets_elsewhere``: open WebSockets
        this process holds the connection of but does not run (fork children).
        """
        figures = self.figures
        totals = figures.totals() if figures is not None else Totals()
        websockets = totals.websocket_connections + websockets_elsewhere
        totals.websocket_connections = websockets
        totals.in_flight = max(0, self.in_flight() - websockets)
        totals.http_connections = max(0, len(self.connections) - websockets)
        return totals

    def body_deadline(self, cycle: HTTPCycle) -> float:
        """When ``cycle``'s body, read now, times out (BODY_TIMEOUT); 0.0: never.

        Not while its ``100 Continue`` waits for the app: the client waits too."""
        if not self.body_timeout or cycle.expects_continue:
            return 0.0
        return self.clock + self.body_timeout

    def sweep_interval(self) -> float:
        """Seconds between sweeps: about four per timeout, at most one."""
        interval = min(1.0, self.header_timeout / 4, self.keep_alive_timeout / 4)
        for timeout in (self.body_timeout, self.stalls.timeout):
            if timeout:
                interval = min(interval, timeout / 4)
        return interval

    def sweep(self) -> None:
        """Time out every connection whose deadline ``clock`` has reached."""
        now = self.clock
        for conn in list(self.connections):
            if conn.deadline and now >= conn.deadline:
                conn.check_timeout(now)
        self.stalls.sweep(now)

    def run_task(self, cycle: HTTPCycle, app: ASGIApp | None = None) -> None:
        """Run ``cycle`` as a task on this loop, with ``app`` (default: the server's)."""
        task = asyncio.get_running_loop().create_task(cycle.run(app or self.app))
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.requests_served += 1
        if self.on_request_done is not None:
            self.on_request_done()


class Server:
    """``await Server(app, config).serve()`` runs until ``should_exit`` is set."""

    def __init__(self, app: ASGIApp, config: Config) -> None:
        self.app = app
        self.config = config
        self.state = ServerState(app, config)
        self._should_exit = False
        #: Set by the process models, which own their process: freeze what
        #: start-up created out of the garbage collector's reach.
        self.freeze_gc = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Set by a second SIGINT: stop without waiting for requests.
        self.force_exit = False
        self.started = asyncio.Event()
        self.servers: list[Listener] = []
        #: The connections dropped at the descriptor limit (accept.py).
        self.drops: DropLog | None = None
        self.lifespan = LifespanRunner(
            app, config.LIFESPAN, extensions={PROCESS_MODEL: {"model": config.MODEL}}
        )

    def totals(self) -> Totals:
        """The figures of this server (the async model: the whole process); see
        ``ServerState.totals``. Empty when ADMIN_ENABLED is off."""
        return self.state.totals()

    @property
    def should_exit(self) -> bool:
        """Set it (from any thread or a signal handler) to stop gracefully."""
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        loop, wake = self._loop, self._wake
        if value and loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)  # the main loop stops at once
            except RuntimeError:
                pass  # the loop closed meanwhile

    @property
    def sockets(self) -> list[socket.socket]:
        return [s for server in self.servers for s in server.sockets]

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context, loaded from the files on first use (ConfigError if it fails)."""
        state = self.state
        if state.tls is None and self.config.SSL_CERT_PATH:
            state.tls = server_tls(self.config)
        return state.tls.context if state.tls is not None else None

    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        """What serves an accepted connection: HTTP, or a TLS handshake then HTTP."""
        state = self.state
        if self.ssl_context() is None:
            return lambda: HTTPProtocol(state)
        return lambda: TLSAcceptor(state, HTTPProtocol(state))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Start up, serve until ``should_exit``, shut down."""
        startup = asyncio.ensure_future(self.lifespan.startup())
        if not await self._until(startup, lambda: self.should_exit):
            logger.info("Stopped during lifespan startup")
            return
        self.state.lifespan_state = startup.result()
        if self.freeze_gc:
            # Everything imported and set up so far lives as long as the
            # process: keep it out of the cyclic collector's full passes,
            # which otherwise stall every connection for ~10 ms at a time
            # (and, after a fork, copy every page they touch).
            gc.collect()
            gc.freeze()
        await self.start_serving(sockets)
        try:
            await self.main_loop()
        finally:
            await self.shutdown()
            shutdown = asyncio.ensure_future(self.lifespan.shutdown())
            if not await self._until(shutdown, lambda: self.force_exit):
                logger.warning("Lifespan shutdown abandoned")
            else:
                shutdown.result()

    async def _settle_idle_connections(self) -> None:
        """Close idle connections only once quiet for ``IDLE_GRACE``.

        Under load, a keep-alive connection with no request is usually one
        whose next request is on its way, and a connection just accepted has
        not been read yet: closing either at once would fail that request.
        A request that arrives is answered with ``Connection: close``.
        """
        state = self.state
        deadline = time.monotonic() + min(self.config.GRACEFUL_TIMEOUT, 4 * IDLE_GRACE)
        quiet_since: dict[HTTPProtocol, float] = {}
        while not self.force_exit:
            now = time.monotonic()
            # a TLS handshake still running (a prefork worker's queued
            # clients) becomes a connection that may carry a request
            waiting = bool(state.handshaking)
            for conn in list(state.connections):
                if conn.cycle is not None or conn.pipeline:
                    continue  # closes after its response
                if not conn.parser.idle:
                    waiting = True  # a request head is arriving
                elif now - quiet_since.setdefault(conn, now) >= IDLE_GRACE:
                    conn.shutdown()
                else:
                    waiting = True
            if not waiting or now >= deadline:
                return
            await asyncio.sleep(0.02)

    def going_away(self) -> int:
        """Graceful time is up: close open WebSockets with 1001; how many were."""
        return sum(1 for conn in list(self.state.connections) if conn.going_away())

    @staticmethod
    async def _until(task: asyncio.Future[Any], stop: Callable[[], bool]) -> bool:
        """Wait for ``task`` unless ``stop()`` turns true first (then cancel it)."""
        while not task.done():
            await asyncio.wait([task], timeout=0.05)
            if stop() and not task.done():
                task.cancel()
                return False
        return True

    async def start_serving(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sockets is None:
            sockets = bind_sockets(self.config)
        factory = self.protocol_factory()
        # accepted here, not by loop.create_server: see accept.py (EMFILE).
        # TLS runs in TLSAcceptor (start_tls), so the server knows every
        # socket from accept on, not only once its handshake is done
        self.drops = DropLog(loop)
        for sock in sockets:
            sock.listen(self.config.BACKLOG)
            self.servers.append(Listener(sock, factory, self.config.BACKLOG, self.drops))
        tls = self.ssl_context() is not None
        for sock in self.sockets:
            self.announce(sock, tls)
        self.started.set()

    def announce(self, sock: socket.socket, tls: bool) -> None:
        """Log where the server listens (another server in the process says it its own way)."""
        logger.info("Listening on %s", describe(sock, tls))

    async def main_loop(self) -> None:
        state = self.state
        self._loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        while not self.should_exit:
            try:
                # read each time: the admin socket may change the timeouts
                await asyncio.wait_for(wake.wait(), state.sweep_interval())
            except TimeoutError:
                pass
            state.tick()
            state.sweep()

    async def shutdown(self) -> None:
        state = self.state
        state.shutting_down = True
        unix_paths = [sock.getsockname() for sock in self.sockets if sock.family == socket.AF_UNIX]
        for server in self.servers:
            server.close()
        for path in unix_paths:  # the files this process bound (not a worker's, nor a child's)
            remove_unix_socket(path)
        await self._settle_idle_connections()
        for conn in list(state.connections):
            conn.shutdown()
        deadline = time.monotonic() + self.config.GRACEFUL_TIMEOUT
        while (state.connections or state.tasks) and not self.force_exit:
            if time.monotonic() >= deadline:
                logger.warning(
                    "Graceful timeout: closing %d connection(s) still busy",
                    len(state.connections),
                )
                break
            await asyncio.sleep(0.05)
        if self.going_away() and not self.force_exit:
            # WebSockets got a 1001 close: give their close handshakes a moment
            deadline = time.monotonic() + 1
            while state.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        for conn in list(state.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for acceptor in list(state.handshaking):
            acceptor.abort()
        if state.tasks:
            # the apps saw http.disconnect; give them a moment, then cancel
            await asyncio.wait(list(state.tasks), timeout=1)
            for task in list(state.tasks):
                task.cancel()
            if state.tasks:
                await asyncio.wait(list(state.tasks), timeout=1)
        for server in self.servers:
            await server.wait_closed()
        if self.drops is not None:
            self.drops.close()  # what the last interval dropped

