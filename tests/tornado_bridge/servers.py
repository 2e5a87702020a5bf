"""ASGI servers for the bridge's tests, each behind the same small interface.

A *driver* serves an ASGI app on an already bound, listening socket, on
the running event loop: ``await driver.start(app, sock)`` then
``await driver.stop()``.  `serve_in_thread` runs a driver on its own loop in
a background thread for tests written with a blocking client.

To serve the bridge's tests with another server, add a driver class and
its name to `DRIVERS` (the ``server`` fixture is parametrized over it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import uvicorn
import uvicorn.server

# ``with serve(asgi_app) as base_url:`` (the ``serve`` fixtures).
Serve = Callable[[Any], contextlib.AbstractContextManager[str]]


class ServerDriver(Protocol):
    async def start(self, app: Any, sock: socket.socket) -> None: ...

    async def stop(self) -> None: ...


class UvicornDriver:
    """uvicorn on the current loop, without its signal handling or ticker."""

    def __init__(self, **config: Any) -> None:
        self._config = config
        self._server: uvicorn.Server | None = None

    async def start(self, app: Any, sock: socket.socket) -> None:
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
        self._task: asyncio.Task[None] | None = None

    async def start(self, app: Any, sock: socket.socket) -> None:
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

        self._task = asyncio.ensure_future(
            serve(app, config, shutdown_trigger=shutdown_trigger, mode="asgi")  # type: ignore[arg-type]
        )
        await started.wait()

    async def stop(self) -> None:
        if self._shutdown is None or self._task is None:
            return
        self._shutdown.set()
        try:
            await asyncio.wait_for(self._task, 5)
        finally:
            self._shutdown = None
            self._task = None


class QactuarDriver:
    """qactuar's server core (the async model's) on the current loop."""

    def __init__(self) -> None:
        self._server: Any = None

    async def start(self, app: Any, sock: socket.socket) -> None:
        from qactuar import Config, Server

        config = Config()
        # proxy headers are the bridge's to read here (xheaders), as with uvicorn's driver
        settings = {"HOST": "127.0.0.1", "PORT": 0, "LIFESPAN": "off", "ACCESS_LOG": False,
                    "PROXY_HEADERS": False}
        config.update(settings, "tests/tornado_bridge")
        # Quiet at INFO ("Listening on ..."): Tornado's tests fail on any log.
        for name in ("qt_server", "qt_access", "websockets"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._server = Server(app, config)
        await self._server.start_serving([sock])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.force_exit = True  # Like close_all_connections: don't drain.
            await server.shutdown()


DRIVERS: dict[str, Callable[[], ServerDriver]] = {
    "qactuar": QactuarDriver,
    "uvicorn": UvicornDriver,
    "hypercorn": HypercornDriver,
}


def bind_free_port() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock, sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(
    driver: ServerDriver,
    app: Any,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields the base URL."""
    sock, port = bind_free_port()
    loop = loop_factory()
    ready = threading.Event()
    stopping: asyncio.Event | None = None
    errors: list[BaseException] = []

    async def main() -> None:
        nonlocal stopping
        stopping = asyncio.Event()
        try:
            await driver.start(app, sock)
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            raise
        ready.set()
        await stopping.wait()
        await driver.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    if errors:
        raise errors[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        assert stopping is not None
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        assert not thread.is_alive(), "test server thread did not stop"
        # Cancel whatever a test left running (e.g. a handler still waiting).
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.close()
        sock.close()
