"""The ``async`` model: one process, one event loop, every connection a task.

SIGTERM or SIGINT stops accepting and lets in-flight requests finish for up
to ``GRACEFUL_TIMEOUT``; a second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from ..asgi.types import ASGIApp
from ..config import Config
from ..lifespan import LifespanFailure
from ..server import Server
from .loops import loop_factory

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


async def serve_with_signals(server: Server, sockets: list[socket.socket] | None) -> int:
    install_signal_handlers(server)
    server.freeze_gc = True  # this process is the server's own
    try:
        await server.serve(sockets)
    except LifespanFailure as exc:
        logger.error("%s", exc)
        return STARTUP_FAILURE
    return 0


def run_async(app: ASGIApp, config: Config, sockets: list[socket.socket] | None = None) -> int:
    """Serve ``app`` in this process until stopped; returns the exit status."""
    server = Server(app, config)
    with asyncio.Runner(loop_factory=loop_factory(config.LOOP)) as runner:
        return runner.run(serve_with_signals(server, sockets))
