"""The one serve-in-thread: an ASGI server on its own event loop in a background thread.

A *driver* serves an app on a bound, listening socket on the running loop:
``await driver.start(app, sock)``, then ``await driver.stop()``; its ``task``
(or None) is what runs while it serves, if anything does. ``serve_in_thread``
binds 127.0.0.1:0, runs the driver in a thread and yields a ``Served``
(``.port``, ``.url``). It fails the test when the server does:

- a start-up that raises re-raises in the test, at once;
- an exception from the server after start-up (its ``task`` failing) is
  re-raised when the block exits, even if the test passed;
- a stop that does not end within ``stop_timeout`` is an AssertionError.

``QactuarDriver(**settings)`` runs ``qactuar.Server.serve()`` (lifespan,
sweeps, graceful stop) with the given settings; ``serve_qactuar(app, **settings)``
is the ``serve`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from qactuar import Config, Server
from qactuar.importer import load_app

from .raw import read_until_closed

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


class ServerDriver(Protocol):
    #: What runs while the server serves (None: nothing to watch); its exception fails the test.
    task: asyncio.Future[Any] | None

    async def start(self, app: Any, sock: socket.socket | None) -> None: ...

    async def stop(self) -> None: ...


class Served:
    """A server serving in a thread: where it listens, and its loop."""

    def __init__(self, driver: Any, loop: asyncio.AbstractEventLoop, port: int,
                 host: str = "127.0.0.1") -> None:
        self.driver = driver
        self.loop = loop
        self.host = host
        self.port = port
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}"

    def connect(self, timeout: float = 5) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 5) -> bytes:
        """Send ``data`` on a new connection; read until the server closes it (or fail)."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_until_closed(sock, timeout)


def bind_free_port(host: str = "127.0.0.1") -> tuple[socket.socket, int]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock, sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(
    driver: ServerDriver,
    app: Any,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    bind: bool = True,
    stop_timeout: float = STOP_TIMEOUT,
) -> Iterator[Served]:
    """Serve ``app`` with ``driver`` from a background thread (see the module's doc).

    ``bind=False``: the driver binds its own socket(s) (it then sets ``port``).
    """
    sock, port = bind_free_port() if bind else (None, 0)
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
            return
        finally:
            ready.set()
        stop_requested = asyncio.ensure_future(stopping.wait())
        watched: list[asyncio.Future[Any]] = [stop_requested]
        if driver.task is not None:
            watched.append(driver.task)
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stop_requested.cancel()
        task = driver.task
        if task is not None and task.done() and not task.cancelled() and task.exception():
            errors.append(task.exception())  # type: ignore[arg-type]
        try:
            await driver.stop()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True,
                              name=f"serve_in_thread {type(driver).__name__}")
    thread.start()
    failed = False
    try:
        if not ready.wait(START_TIMEOUT):
            raise AssertionError(f"the server did not start within {START_TIMEOUT:g} s")
        if errors:
            raise errors[0]
        if not bind:
            port = int(getattr(driver, "port", 0))
        host = getattr(driver, "host", "127.0.0.1")
        yield Served(driver, loop, port, host)
    except BaseException:
        failed = True  # the test's own failure is the one reported
        raise
    finally:
        if stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already stopped
                loop.call_soon_threadsafe(stopping.set)
        thread.join(stop_timeout)
        if sock is not None:
            sock.close()
        stopped = not thread.is_alive()
        if stopped:
            _close_loop(loop)
        if not failed:
            assert stopped, f"the server's stop did not end within {stop_timeout:g} s"
            if errors:
                raise errors[0]


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel whatever a test left running (e.g. a handler still waiting); close the loop."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=5))
    loop.close()


class QactuarDriver:
    """``qactuar.Server(app, config).serve()`` on the current loop, with ``settings``.

    ``drain=False`` stops as Tornado's ``close_all_connections`` does: at once,
    without waiting for requests (``force_exit``).
    """

    def __init__(self, *, drain: bool = True, **settings: Any) -> None:
        settings.setdefault("HOST", "127.0.0.1")
        settings.setdefault("PORT", 0)
        settings.setdefault("LIFESPAN", "auto")
        settings.setdefault("MODEL", "async")  # what it runs: the scope says so
        settings.setdefault("GRACEFUL_TIMEOUT", 5)
        self.config = Config()
        self.config.update(settings, "test")
        self.drain = drain
        self.server: Server | None = None
        self.task: asyncio.Future[Any] | None = None
        self.port = 0
        self.host = "127.0.0.1"

    async def start(self, app: Any, sock: socket.socket | None) -> None:
        server = self.server = Server(load_app(app), self.config)
        self.task = asyncio.ensure_future(server.serve([sock] if sock is not None else None))
        started = asyncio.ensure_future(server.started.wait())
        await asyncio.wait([self.task, started], return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            await self.task  # raises why it failed to start
            raise RuntimeError("the server stopped during start-up")
        name = server.sockets[0].getsockname()
        self.host, self.port = (name, 0) if isinstance(name, str) else name[:2]

    async def stop(self) -> None:
        server, task = self.server, self.task
        if server is None or task is None:
            return
        if not self.drain:
            server.force_exit = True
        server.should_exit = True
        await task  # its exception, if any, is the test's


class RunningServer(Served):
    """A qactuar Server serving in a thread (the ``serve`` fixture's)."""

    server: Server

    def stop(self) -> None:
        """Stop gracefully (from the test's thread), as a signal would."""
        self.server.should_exit = True


@contextlib.contextmanager
def serve_qactuar(app: Any, **settings: Any) -> Iterator[RunningServer]:
    """A qactuar Server for ``app`` with ``settings`` in a thread, stopped on exit.

    It serves a socket the test bound on 127.0.0.1 unless the settings name
    where to listen (HOST, PORT, UDS, BIND, FD): then it binds them itself.
    """
    bind = not any(key in settings for key in ("HOST", "PORT", "UDS", "BIND", "FD"))
    driver = QactuarDriver(**settings)
    with serve_in_thread(driver, app, bind=bind) as served:
        running = RunningServer(driver, served.loop, served.port, served.host)
        assert driver.server is not None
        running.server = driver.server
        yield running
