"""The ``async`` model: one process, one event loop, every connection a task.

SIGTERM or SIGINT stops accepting and lets in-flight requests finish for up
to ``GRACEFUL_TIMEOUT``; a second SIGINT stops at once. With ADMIN_ENABLED
the admin socket is served on the same loop (``admin/serve.py``), stopped
once the server has.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING

from ..asgi.types import ASGIApp
from ..config import Config, ConfigError
from ..lifespan import LifespanFailure
from ..server import Server, bind_sockets
from .loops import loop_factory

if TYPE_CHECKING:
    from ..admin.serve import AdminSocket

__all__ = ["run_async", "serve_with_signals"]

logger = logging.getLogger("qt_server")

#: Exit status when lifespan startup fails (as uvicorn uses).
STARTUP_FAILURE = 3


def install_signal_handlers(server: Server) -> None:
    loop = asyncio.get_running_loop()

    def on_term() -> None:
        logger.info("SIGTERM: stopping gracefully")
        server.should_exit = True

    def on_int() -> None:
        if server.should_exit:
            logger.info("Second SIGINT: stopping now")
            server.force_exit = True
        else:
            logger.info("SIGINT: stopping gracefully (again to stop now)")
            server.should_exit = True

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_int)


async def serve_with_signals(
    server: Server, sockets: list[socket.socket] | None, admin: AdminSocket | None = None
) -> int:
    install_signal_handlers(server)
    server.freeze_gc = True  # this process is the server's own
    if admin is not None:
        await admin.start()
    try:
        await server.serve(sockets)
    except LifespanFailure as exc:
        logger.error("%s", exc)
        return STARTUP_FAILURE
    finally:
        if admin is not None:
            await admin.stop(now=server.force_exit)
    return 0


def bind_with_admin(
    config: Config, sockets: list[socket.socket] | None
) -> tuple[list[socket.socket] | None, AdminSocket | None]:
    """With ADMIN_ENABLED: the main sockets, then the admin socket, bound now
    (BindError for the main ones, ConfigError for the admin one)."""
    if not config.ADMIN_ENABLED:
        return sockets, None
    from ..admin.serve import admin_socket

    if sockets is None:
        sockets = bind_sockets(config)
    try:
        return sockets, admin_socket(config)
    except ConfigError:
        for sock in sockets:
            sock.close()
        raise


def run_async(app: ASGIApp, config: Config, sockets: list[socket.socket] | None = None,
              target: str | None = None) -> int:
    """Serve ``app`` in this process until stopped; returns the exit status.

    ``target``: the "module:attribute" ``app`` came from, if any (the admin
    socket lists it and re-imports it on reload)."""
    server = Server(app, config)
    try:
        sockets, admin = bind_with_admin(config, sockets)
    except ConfigError as exc:
        print(f"qactuar: {exc}", file=sys.stderr)
        return 2
    if admin is not None:
        from ..admin.backends import AsyncBackend

        admin.backend = AsyncBackend(server, target)
    with asyncio.Runner(loop_factory=loop_factory(config.LOOP)) as runner:
        return runner.run(serve_with_signals(server, sockets, admin))
