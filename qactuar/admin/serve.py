"""Where the admin socket runs: qactuar's own core, on the serving loop of the
process that owns the server (the process itself, the fork parent, the
prefork master), never in a child or a worker.

``admin_socket(config)`` binds it at start-up, after the main sockets, or
raises a one-line ``ConfigError`` (a busy ADMIN_PORT, a non-loopback
ADMIN_HOST without an explicit ADMIN_TOKEN, an ADMIN_TOKEN shorter than 16
characters, a token file that cannot be written). ``AdminSocket.start()``
serves it on the running loop with a second ``Server`` (its own
``ServerState``, a config derived from the main one: no TLS, no proxy
headers, no LIMIT_CONCURRENCY, no lifespan) and ``stop()`` ends it once the
main server has stopped. The descriptors it holds are never a child's: a
fork child closes them with the parent's (``track_fork_children``), a
prefork worker first thing (``in_child``).

``build_admin_app`` is the one place the admin app is chosen.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import ipaddress
import logging
import os
import socket
import stat
from array import array
from typing import TYPE_CHECKING

from ..addresses import Address
from ..config import Config, ConfigError
from ..server import BindError, Server
from ..server.protocol import HTTPProtocol
from ..server.sockets import bind_address, describe, resolve
from .token import AdminToken, admin_token

if TYPE_CHECKING:
    from .app import AdminApp
    from .backend import AdminBackend

__all__ = ["AdminServer", "AdminSocket", "admin_config", "admin_socket", "build_admin_app"]

logger = logging.getLogger("qt_server")

#: The shortest ADMIN_TOKEN accepted (a generated one has 43 characters).
MIN_TOKEN_LENGTH = 16
#: The longest an admin client may hold up the end of a graceful stop.
ADMIN_GRACEFUL_TIMEOUT = 2.0


def build_admin_app(backend: AdminBackend, token: str) -> AdminApp:
    """The ASGI app the admin socket serves: the admin API and the dashboard.

    Imported only here, as the socket starts serving: binding it needs none
    of it (the fork model forks its zygote in between, which should not
    carry the admin app's 1.8 MiB into every child's fork and exit)."""
    from .app import admin_app
    from .dashboard import dashboard_app

    return admin_app(backend, token, dashboard=dashboard_app)


class AdminServer(Server):
    """The server core, serving the admin app; it says where as the admin socket."""

    def announce(self, sock: socket.socket, tls: bool) -> None:
        logger.info("Admin socket on %s", describe(sock, False))


def admin_config(config: Config) -> Config:
    """The admin server's settings: the main ones, on ADMIN_* and without what
    concerns the public side (TLS, proxies, concurrency limit, apps, lifespan)."""
    derived = copy.deepcopy(config)
    derived.update({
        "HOST": config.ADMIN_HOST, "PORT": config.ADMIN_PORT, "UDS": config.ADMIN_UDS,
        "BIND": [], "FD": [], "REUSE_PORT": False, "UDS_MODE": "0600",
        "SSL_CERT_PATH": "", "SSL_KEY_PATH": "", "PROXY_HEADERS": False,
        "PROXY_PROTOCOL": False, "LIMIT_CONCURRENCY": 0, "HEALTH_PATH": "",
        "LIFESPAN": "off", "APPS": {}, "ADMIN_ENABLED": False,  # (no figures of its own)
        "GRACEFUL_TIMEOUT": min(config.GRACEFUL_TIMEOUT, ADMIN_GRACEFUL_TIMEOUT),
    }, "the admin socket")
    return derived


def _refuse(config: Config, key: str, reason: str) -> ConfigError:
    return ConfigError(key, getattr(config, key), config.source_of(key), reason)


def _bind(config: Config) -> socket.socket:
    """The admin socket, bound and listening; ConfigError naming the ADMIN_* key."""
    derived = admin_config(config)
    if config.ADMIN_UDS:
        try:
            return bind_address(Address("unix", path=config.ADMIN_UDS), derived)
        except BindError as exc:
            raise _refuse(config, "ADMIN_UDS", exc.strerror or str(exc)) from None
    address = Address("tcp", config.ADMIN_HOST, config.ADMIN_PORT)
    try:
        family, _, _, sockaddr = resolve(address)
    except BindError as exc:
        raise _refuse(config, "ADMIN_HOST", exc.strerror or str(exc)) from None
    host = str(sockaddr[0]).split("%")[0]
    if not config.ADMIN_TOKEN and not ipaddress.ip_address(host).is_loopback:
        raise _refuse(config, "ADMIN_HOST", f"{host} is not a loopback address: serving the "
                      "admin socket on it needs an explicit ADMIN_TOKEN")
    try:
        return bind_address(address, derived)
    except BindError as exc:
        raise _refuse(config, "ADMIN_PORT", exc.strerror or str(exc)) from None


def admin_socket(config: Config) -> AdminSocket | None:
    """The admin socket bound, its token ready (None when ADMIN_ENABLED is off).

    ConfigError, in one line naming the key, if it cannot be.
    """
    if not config.ADMIN_ENABLED:
        return None
    if config.ADMIN_TOKEN and len(config.ADMIN_TOKEN) < MIN_TOKEN_LENGTH:
        from .configapi import MASK

        raise ConfigError("ADMIN_TOKEN", MASK, config.source_of("ADMIN_TOKEN"),
                          f"{len(config.ADMIN_TOKEN)} characters: an admin token needs at "
                          f"least {MIN_TOKEN_LENGTH} (or none: one is generated)")
    sock = _bind(config)
    try:
        name: int | str = config.ADMIN_UDS or int(sock.getsockname()[1])
        token = admin_token(config, name)
    except BaseException:
        sock.close()
        raise
    return AdminSocket(admin_config(config), sock, token)


class AdminSocket:
    """The bound admin socket; served on the running loop from ``start`` to ``stop``."""

    def __init__(self, config: Config, sock: socket.socket, token: AdminToken) -> None:
        self.config = config
        self.sock = sock
        self.token = token
        #: Set by the process model before ``start``.
        self.backend: AdminBackend | None = None
        self.server: AdminServer | None = None
        self.app: AdminApp | None = None
        self._sweep: asyncio.Task[None] | None = None
        #: fork: the parent's list of the descriptors a child closes (fork_fds.py).
        self._fork_closes: array[int] | None = None
        self._fds: dict[HTTPProtocol, int] = {}
        #: (family, address) every admin socket and connection has locally: the
        #: path, or (host, port); the port alone when bound to every address
        #: (a connection's local host is then the interface it came in on).
        if sock.family == socket.AF_UNIX:
            self._local: tuple[int, object] = (sock.family, sock.getsockname())
        else:
            host, port = sock.getsockname()[:2]
            wildcard = ipaddress.ip_address(host.split("%")[0]).is_unspecified
            self._local = (sock.family, port if wildcard else (host, port))

    def close(self) -> None:
        """Never served (start-up failed elsewhere): close it, remove its files."""
        if self.server is None:
            self._unlist()
            self.sock.close()
            self.token.remove()

    # serving ---------------------------------------------------------------------

    async def start(self) -> None:
        assert self.backend is not None, "the process model sets its backend first"
        app = self.app = build_admin_app(self.backend, self.token.value)
        app.start()  # its sampler (the core runs no lifespan here)
        server = self.server = AdminServer(app, self.config)
        if self._fork_closes is not None:
            server.state.on_open = self._opened
            server.state.on_close = self._closed
        await server.start_serving([self.sock])
        self._sweep = asyncio.get_running_loop().create_task(server.main_loop())

    async def stop(self, now: bool = False) -> None:
        """Stop serving (after the main server): admin clients get a moment, no more."""
        server = self.server
        if server is None or self._sweep is None:
            self.close()
            return
        server.force_exit = now
        server.should_exit = True
        await self._sweep
        self._unlist()  # it closes now: no longer listed
        await server.shutdown()  # closes the socket; removes an ADMIN_UDS file
        if self.app is not None:
            await self.app.close()
        self.token.remove()

    # never in a child ------------------------------------------------------------------

    def track_fork_children(self, closes: array[int]) -> None:
        """fork: list the admin socket (now) and its connections (from ``start`` on)
        among what a zygote closes (``ForkServer.child_closes``)."""
        self._fork_closes = closes
        bisect.insort(closes, self.sock.fileno())

    def _unlist(self) -> None:
        fd = self.sock.fileno()
        if self._fork_closes is not None and fd >= 0 and fd in self._fork_closes:
            self._fork_closes.remove(fd)

    def _opened(self, conn: HTTPProtocol) -> None:
        assert conn.transport is not None and self._fork_closes is not None
        fd = self._fds[conn] = int(conn.transport.get_extra_info("socket").fileno())
        bisect.insort(self._fork_closes, fd)

    def _closed(self, conn: HTTPProtocol) -> None:
        fd = self._fds.pop(conn, None)
        if fd is not None and self._fork_closes is not None:
            self._fork_closes.remove(fd)

    def in_child(self) -> None:
        """prefork, in a new worker: close the admin socket and every admin connection.

        With ``os.close`` only: their transports belong to the master's loop,
        which the worker never touches. A connection the master accepted but
        has not set up yet has no transport: every socket whose local address
        is the admin socket's is closed, found in /proc/self/fd.
        """
        for fd in _open_fds():
            try:
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
                probe = socket.socket(fileno=fd)
            except OSError:
                continue
            try:
                name = probe.getsockname()
                if probe.family == socket.AF_UNIX:
                    local: tuple[int, object] | None = (probe.family, name)
                elif isinstance(self._local[1], int):  # a wildcard admin socket
                    local = (probe.family, name[1])
                else:
                    local = (probe.family, tuple(name[:2]))
            except (OSError, IndexError, TypeError):
                local = None
            finally:
                probe.detach()
            if local == self._local:
                os.close(fd)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every descriptor up to the limit
        return list(range(3, os.sysconf("SC_OPEN_MAX")))
