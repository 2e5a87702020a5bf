"""ASGI servers for the bridge's tests, each behind the same small interface.

A *driver* serves an ASGI app on an already bound, listening socket, on
the running event loop: ``await driver.start(app, sock)`` then
``await driver.stop()`` (support.threaded.ServerDriver). tests/support's
``serve_in_thread`` runs one on its own loop in a background thread for
tests written with a blocking client, and fails the test on a server error
or a stop that hangs.

To serve the bridge's tests with another server, add a driver class and
its name to `DRIVERS` (the ``server`` fixture is parametrized over it).

`TornadoDriver` is the reference: Tornado's own HTTPServer serving the
Tornado application itself; `serve_compared` serves one application either
way, for tests that compare what a client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import tornado.httpserver
import tornado.web
import uvicorn
import uvicorn.server
from support import QactuarDriver as _QactuarServer
from support import Served, ServerDriver
from support import serve_in_thread as _serve_in_thread

from qactuar.tornado_bridge import wrap

# ``with serve(asgi_app) as base_url:`` (the ``serve`` fixtures).
Serve = Callable[[Any], contextlib.AbstractContextManager[str]]


class UvicornDriver:
    """uvicorn on the current loop, without its signal handling or ticker."""

    def __init__(self, **config: Any) -> None:
        self._config = config
        self._server: uvicorn.Server | None = None
        self.task: asyncio.Future[Any] | None = None  # it serves from callbacks

    async def start(self, app: Any, sock: socket.socket | None) -> None:
        assert sock is not None
        options: dict[str, Any] = {
            "lifespan": "off",
            "log_config": None,
            "log_level": "warning",
            "access_log": False,
            "server_header": False,
            "date_header": False,
            "proxy_headers": False,
            # uvicorn's default websockets-sansio protocol logs "returned
            # without completing handshake" after a complete denial response
            # (websocket.http.response.*); its wsproto protocol does not.
            "ws": "wsproto",
        }
        options.update(self._config)
        config = uvicorn.Config(app, **options)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server

    async def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        for listener in server.servers:
            listener.close()
        # Like Tornado's close_all_connections: close them, don't drain.
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for listener in server.servers:
            await listener.wait_closed()
        for _ in range(100):
            if not server.server_state.tasks:
                break
            await asyncio.sleep(0.01)


class HypercornDriver:
    """Hypercorn's asyncio server on the current loop, on the given socket."""

    def __init__(self) -> None:
        self._shutdown: asyncio.Event | None = None
        self.task: asyncio.Future[Any] | None = None

    async def start(self, app: Any, sock: socket.socket | None) -> None:
        assert sock is not None
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        # Hypercorn takes ownership of the descriptor it is given: give it a copy.
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        config.accesslog = None
        # Its own logger at WARNING: no "Running on" line; errors still show.
        errorlog = logging.getLogger("tests.tornado_bridge.hypercorn")
        errorlog.setLevel(logging.WARNING)
        config.errorlog = errorlog
        config.graceful_timeout = 0.5
        config.include_server_header = False
        config.include_date_header = False
        self._shutdown = asyncio.Event()
        started = asyncio.Event()

        async def shutdown_trigger() -> None:
            started.set()
            assert self._shutdown is not None
            await self._shutdown.wait()

        self.task = asyncio.ensure_future(
            serve(app, config, shutdown_trigger=shutdown_trigger, mode="asgi")  # type: ignore[arg-type]
        )
        await started.wait()

    async def stop(self) -> None:
        if self._shutdown is None or self.task is None:
            return
        self._shutdown.set()
        try:
            await asyncio.wait_for(self.task, 5)
        finally:
            self._shutdown = None


class QactuarDriver(_QactuarServer):
    """qactuar's server (the async model's core: ``Server.serve()``) on the current loop.

    Lifespan off (the bridge's apps are served per test), no access log,
    proxy headers the bridge's to read (xheaders) as with uvicorn's driver,
    and a stop like Tornado's close_all_connections: no draining.
    """

    def __init__(self) -> None:
        super().__init__(drain=False, LIFESPAN="off", ACCESS_LOG=False, PROXY_HEADERS=False)
        # Quiet at INFO ("Listening on ..."): Tornado's tests fail on any log.
        for name in ("qt_server", "qt_access", "websockets"):
            logging.getLogger(name).setLevel(logging.WARNING)


class TornadoDriver:
    """Tornado's own HTTPServer on the current loop, serving a Tornado Application."""

    def __init__(self) -> None:
        self._server: tornado.httpserver.HTTPServer | None = None
        self.task: asyncio.Future[Any] | None = None  # it serves from callbacks

    async def start(self, app: Any, sock: socket.socket | None) -> None:
        assert sock is not None and isinstance(app, tornado.web.Application)
        server = tornado.httpserver.HTTPServer(app)
        # HTTPServer closes the sockets it is given when it stops: give it a copy.
        server.add_sockets([sock.dup()])
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()


#: Where `serve_compared` serves: Tornado's HTTPServer, then the bridge under each driver.
REFERENCE = "tornado"


DRIVERS: dict[str, Callable[[], ServerDriver]] = {
    "qactuar": QactuarDriver,
    "uvicorn": UvicornDriver,
    "hypercorn": HypercornDriver,
}


@contextlib.contextmanager
def serve_in_thread(
    driver: ServerDriver,
    app: Any,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> Iterator[str]:
    """Serve ``app`` from a background thread (support.serve_in_thread); yields the base URL."""
    with _serve_in_thread(driver, app, loop_factory=loop_factory) as served:
        yield served.url


@contextlib.contextmanager
def serve_compared(target: str, app: tornado.web.Application) -> Iterator[Served]:
    """Serve the Tornado ``app`` in a thread: by Tornado (`REFERENCE`) or wrapped, by a driver."""
    if target == REFERENCE:
        with _serve_in_thread(TornadoDriver(), app) as served:
            yield served
    else:
        with _serve_in_thread(DRIVERS[target](), wrap(app)) as served:
            yield served
