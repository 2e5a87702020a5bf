"""The ``prefork`` model: a master that keeps a pool of async workers.

The master binds the listening sockets (or takes inherited ones: FD, systemd
socket activation), imports the apps (``PRELOAD``), forks ``WORKERS``
workers and then only supervises (``arbiter.py``); it never serves a
request. Each worker (``worker.py``) runs the async model's server core on
the inherited sockets or, with ``REUSE_PORT``, on a ``SO_REUSEPORT``
socket of its own (its *lane*), so that the kernel spreads connections over
the workers. The master holds every lane too, and a replacement (after
MAX_REQUESTS, a crash, a reload) takes over its predecessor's lane: a lane's
queue of connections not yet accepted never dies with a worker.

Signals to the master: SIGHUP re-reads the config file and replaces every
worker, new ones first (with ``PRELOAD`` off the new ones import the apps
afresh); SIGTTIN / SIGTTOU add / remove a worker; SIGTERM (or a first
SIGINT) drains every worker for up to ``GRACEFUL_TIMEOUT`` and exits 0; a
second SIGINT, or SIGQUIT, stops at once.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from ..addresses import Address
from ..asgi.types import ASGIApp
from ..config import Config, ConfigError
from ..importer import AppImportError, build_app
from ..server import BindError, bind_sockets
from ..server.sockets import configured_addresses, describe, resolve, systemd_fds
from .arbiter import Arbiter
from .loops import loop_factory

__all__ = ["PreforkSockets", "run_prefork"]

logger = logging.getLogger("qt_server")


class PreforkSockets:
    """The master's sockets, and how each worker gets the ones it serves on.

    Without REUSE_PORT, ``sockets`` is the one listening socket every worker
    shares. With it, ``sockets`` are the lanes: SO_REUSEPORT sockets bound to
    the address, one per serving worker. The master creates a lane bound but
    not listening: it takes no connections until its first worker starts
    serving on it (after lifespan startup; ``Server.start_serving`` calls
    ``listen()``). The master closes a lane once no current worker has it.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sockets: list[socket.socket] = []
        self._lane_address: Any = None

    def bind(self) -> None:
        config = self.config
        if not config.REUSE_PORT:
            self.sockets = bind_sockets(config)  # every BIND, FD and systemd socket
            return
        address = self._reuse_port_address()
        # Bound, not listening: it holds the port (and learns it when PORT is
        # 0) without taking a share of the connections, which only listening
        # sockets get.
        family, kind, proto, sockaddr = resolve(address)
        sock = _reuse_port_socket(family, kind, proto)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise BindError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
        self._lane_address = sock.getsockname()  # the port the kernel chose for PORT 0
        self.sockets = [sock]

    def _reuse_port_address(self) -> Address:
        """The one TCP address lanes are made for; ConfigError for anything else.

        A lane is a socket the master makes per worker: it cannot be made for
        a socket it inherited, and a Unix socket has no SO_REUSEPORT groups.
        """
        config = self.config

        def refuse(reason: str) -> ConfigError:
            return ConfigError("REUSE_PORT", True, config.source_of("REUSE_PORT"), reason)

        if systemd_fds():
            raise refuse("cannot make lanes from systemd's sockets (LISTEN_FDS): turn it off")
        addresses = configured_addresses(config)
        if not addresses:
            if config.UDS:
                raise refuse("needs HOST/PORT, not UDS")
            return Address("tcp", config.HOST, config.PORT)
        if len(addresses) > 1 or addresses[0].kind != "tcp":
            shown = ", ".join(str(a) for a in addresses)
            raise refuse(f"needs exactly one TCP address to make lanes for, not BIND/FD {shown}")
        return addresses[0]

    def lane_for(
        self, taken: set[socket.socket | None], closing: frozenset[socket.socket | None]
    ) -> socket.socket | None:
        """REUSE_PORT: a lane for a new worker, one no other current worker has.

        Best a lane whose old worker serves until the new one does; else one
        whose workers were just told to stop (its queue is kept for the new
        worker instead of being reset); else a new one.
        """
        if not self.config.REUSE_PORT:
            return None
        free = [lane for lane in self.sockets if lane not in taken]
        for lane in sorted(free, key=lambda lane: lane in closing):
            return lane
        held = self.sockets[0]
        lane = _reuse_port_socket(held.family, held.type, held.proto)
        try:
            lane.bind(self._lane_address)
        except OSError:
            lane.close()
            raise
        self.sockets.append(lane)
        return lane

    def prune(self, kept: set[socket.socket | None]) -> None:
        """Close the lanes no current worker has (a lane of the pool's last is kept).

        A worker still stopping on a closed lane holds its own descriptor:
        it accepts what is queued and closes it, which takes the lane out of
        the kernel's group. Without REUSE_PORT the sockets are no lanes: every
        worker serves on all of them, and they stay.
        """
        if not self.config.REUSE_PORT:
            return
        for lane in list(self.sockets):
            if lane not in kept and len(self.sockets) > 1:
                self.sockets.remove(lane)
                lane.close()

    def for_worker(self, lane: socket.socket | None) -> list[socket.socket]:
        """First thing in a new worker: the sockets to serve on.

        The other lanes are closed at once: a lane the master closes must not
        stay listening in a worker that is still importing the apps.
        """
        if lane is None:
            return self.sockets
        for other in self.sockets:
            if other is not lane:
                other.close()
        lane.setblocking(False)
        return [lane]

    def describe(self) -> list[str]:
        tls = bool(self.config.SSL_CERT_PATH)
        return [describe(sock, tls) for sock in self.sockets]


def _reuse_port_socket(family: int, kind: int, proto: int) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def run_prefork(config: Config, target: str | ASGIApp | None) -> int:
    """Run the master until stopped; returns the process exit status."""
    app: ASGIApp | None = None
    if config.PRELOAD or not isinstance(target, str | None):
        try:
            app = build_app(
                config.APPS, target, config.LIFESPAN, config.FACTORY, config.APP_DIR
            )
        except AppImportError as exc:
            logger.error("Cannot load app: %s", exc)
            return 2
    elif not config.APPS and target is None:
        logger.error(
            "Cannot load app: no app to serve: pass 'module:app' on the command line "
            "or set APPS in the config"
        )
        return 2
    try:
        loop_factory(config.LOOP)  # imports uvloop once, for every worker
    except RuntimeError as exc:
        print(f"qactuar: config LOOP={config.LOOP!r}: {exc}", file=sys.stderr)
        return 2
    sockets = PreforkSockets(config)
    try:
        sockets.bind()
    except ConfigError as exc:
        print(f"qactuar: {exc}", file=sys.stderr)
        return 2
    except BindError as exc:
        logger.error("%s", exc)
        return 1
    admin = None
    if config.ADMIN_ENABLED:  # the admin socket: in the master, never a worker's
        from ..admin.serve import admin_socket

        try:
            admin = admin_socket(config)
        except ConfigError as exc:
            print(f"qactuar: {exc}", file=sys.stderr)
            for sock in sockets.sockets:
                sock.close()
            return 2
    for where in sockets.describe():
        logger.info("Listening on %s", where)
    arbiter = Arbiter(config, target, app, sockets)
    if admin is not None:
        from ..admin.backends import PreforkBackend

        admin.backend = PreforkBackend(arbiter)
        arbiter.companion = admin
    return arbiter.run()
