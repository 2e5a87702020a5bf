"""One prefork worker: the async model's server core in a child of the master.

The master forks a worker with a ``WorkerSlot``, a page of memory both share:
the worker writes its heartbeat (a monotonic timestamp, from a task on its
event loop, so a blocked loop stops it), its request count and its state;
the master reads them. A byte on the master's wake-up pipe tells it to look
now rather than at its next tick (the worker is ready, or wants replacing).

A worker that reaches its ``MAX_REQUESTS`` keeps serving but marks itself
retiring; the master starts its replacement and, once that one serves, sends
SIGTERM. On SIGTERM a worker stops accepting, answers what it has with
``Connection: close``, gives idle keep-alive connections a moment in which a
request may still be on its way, then drains as the async model does.
SIGQUIT stops it at once. It ignores SIGINT (the master decides) and dies
with the master (``PR_SET_PDEATHSIG``, with a ``getppid()`` check as backup).
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import importlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from ..asgi.cycle import HTTPCycle
from ..asgi.types import ASGIApp
from ..config import Config
from ..http import Response
from ..importer import AppImportError, build_app
from ..lifespan import LifespanFailure
from ..server import Server
from .loops import loop_factory
from .slot import BOOT_ERROR, STACK_SIGNAL, WorkerSlot, WorkerState, beat_interval

__all__ = ["WorkerServer", "WorkerSpec", "worker_main"]

logger = logging.getLogger("qt_child")

#: How long a drained worker waits on an idle keep-alive connection for a
#: request that may already be on its way before closing it.
_PR_SET_PDEATHSIG = 1


@dataclass(slots=True)
class WorkerSpec:
    """Everything a freshly forked worker needs; built by the master."""

    config: Config
    #: The app imported by the master (PRELOAD), else None: import ``target``.
    app: ASGIApp | None
    target: str | ASGIApp | None
    #: Returns the listening sockets this worker serves on.
    listeners: Callable[[], list[socket.socket]]
    slot: WorkerSlot
    #: Write end of the master's wake-up pipe (non-blocking).
    wake_fd: int
    #: Read end of that pipe, which the worker closes.
    wake_read_fd: int
    master_pid: int
    #: Requests after which to retire (0: never).
    max_requests: int
    #: Run first thing in the worker: closes the descriptors of what the
    #: master serves beside supervising (the admin socket: ``Companion.in_child``).
    in_child: Callable[[], None] | None = None
    #: The master's event loop, which the worker was forked inside (asyncio's
    #: running loop is per process: None in the worker). Held here for the
    #: worker's life: never closed, run or freed in it (closing it would take
    #: the master's descriptors out of the epoll instance both share).
    master_loop: asyncio.AbstractEventLoop | None = None


class WorkerServer(Server):
    """The server core plus heartbeat, retirement and a careful drain."""

    def __init__(self, app: ASGIApp, spec: WorkerSpec) -> None:
        super().__init__(app, spec.config)
        self.spec = spec
        self.slot = spec.slot
        self._stop = asyncio.Event()
        self._retiring = False
        if spec.max_requests:
            self.state.on_request_done = self._request_done
        self.beat_interval = beat_interval(spec.config.WORKER_TIMEOUT)

    # what the master hears ------------------------------------------------------

    def _wake_master(self) -> None:
        try:
            os.write(self.spec.wake_fd, b"w")
        except (BlockingIOError, BrokenPipeError):
            pass  # the master is awake already, or gone

    def _request_done(self) -> None:
        if self.state.requests_served >= self.spec.max_requests and not self._retiring:
            self._retiring = True
            self.slot.requests = self.state.requests_served
            if not self.should_exit:
                self.slot.state = WorkerState.RETIRING
                logger.info(
                    "Worker %d served %d requests (MAX_REQUESTS): asking for a replacement",
                    os.getpid(),
                    self.state.requests_served,
                )
                self._wake_master()

    async def heartbeat(self) -> None:
        slot, state = self.slot, self.state
        master = self.spec.master_pid
        while True:
            slot.heartbeat = time.monotonic()
            slot.requests = state.requests_served
            self.publish_figures()
            if os.getppid() != master and not self.should_exit:
                logger.warning("Worker %d: the master is gone; stopping", os.getpid())
                self.stop(graceful=True)
            await asyncio.sleep(self.beat_interval)

    def publish_figures(self) -> None:
        """Hand the master this worker's admin figures (ADMIN_ENABLED): at most once
        per heartbeat and at exit, never per request."""
        block = self.slot.figures
        if block is not None and self.state.figures is not None:
            block.publish(self.state.totals())

    # stopping ---------------------------------------------------------------------

    def stop(self, graceful: bool) -> None:
        if not graceful:
            self.force_exit = True
        if self.should_exit:
            return
        self.should_exit = True
        self.slot.state = WorkerState.STOPPING
        state = self.state
        # Every response from now on tells its client to reconnect elsewhere
        # (then runs as before: in the worker, or relayed to a fork child).
        run_cycle = state.run_cycle

        def run_last_cycle(cycle: HTTPCycle) -> None:
            _close_after(cycle)
            run_cycle(cycle)

        state.run_cycle = run_last_cycle
        for conn in state.connections:
            for cycle in (conn.cycle, *conn.pipeline):
                _close_after(cycle)
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop, True)
        loop.add_signal_handler(signal.SIGQUIT, self.stop, False)

    # the server core's steps ------------------------------------------------------

    async def start_serving(self, sockets: list[socket.socket] | None = None) -> None:
        await super().start_serving(sockets)
        if not self.should_exit:
            self.slot.state = WorkerState.READY
        logger.info("Worker %d serving", os.getpid())
        self._wake_master()

    async def main_loop(self) -> None:
        sweep = asyncio.ensure_future(super().main_loop())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([sweep, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sweep.cancel()
            stop.cancel()

    async def shutdown(self) -> None:
        self.state.shutting_down = True
        # A SO_REUSEPORT socket's own queue dies with it (its clients get a
        # reset): take what is queued, then close at once.
        queued = self._accept_queued() if self.config.REUSE_PORT else []
        for server in self.servers:
            server.close()  # stop accepting; the other workers take new clients
        loop = asyncio.get_running_loop()
        factory = self.protocol_factory()
        for sock in queued:
            await loop.connect_accepted_socket(factory, sock)
        await super().shutdown()

    def _accept_queued(self) -> list[socket.socket]:
        accepted = []
        for listener in self.sockets:
            with socket.socket(fileno=os.dup(listener.fileno())) as sock:
                sock.setblocking(False)
                while True:
                    try:
                        conn, _ = sock.accept()
                    except OSError:  # BlockingIOError: the queue is empty
                        break
                    accepted.append(conn)
        return accepted

    async def run(self, sockets: list[socket.socket]) -> int:
        self.install_signal_handlers()
        self.freeze_gc = True  # the worker process is the server's own
        beat = asyncio.ensure_future(self.heartbeat())
        try:
            await self.serve(sockets)
        except LifespanFailure as exc:
            self.slot.reason = str(exc)  # the master logs it
            return BOOT_ERROR
        finally:
            beat.cancel()
            self.slot.requests = self.state.requests_served
            self.publish_figures()  # the master folds them in once this worker is gone
        return 0


def _close_after(cycle: object) -> None:
    """Make a response not yet begun say ``Connection: close``.

    A WebSocket session stands where an HTTP cycle would: it has no response.
    """
    response = getattr(cycle, "response", None)
    if isinstance(response, Response) and not response.head_sent:
        response.keep_alive = False


class _CoreInfoFilter(logging.Filter):
    """In a worker the core's info lines (``Listening on``...) repeat the master's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _die_with_master() -> None:
    """Ask Linux for SIGTERM when the master dies (SIGKILL included)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the heartbeat's getppid() check notices instead


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the master decides
    for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(signum, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, _quit_now)  # SIG_DFL would dump core


def _print_stacks_on_request() -> None:
    try:
        faulthandler.register(STACK_SIGNAL, file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, OSError):
        pass  # no real stderr to write to


def _quit_now(signum: int, frame: object) -> None:
    """SIGQUIT before the event loop runs: the master wants this worker gone now."""
    os._exit(1)


def _load(spec: WorkerSpec) -> ASGIApp:
    if spec.app is not None:
        return spec.app
    importlib.invalidate_caches()  # modules written since the master started
    config = spec.config
    return build_app(
        config.APPS, spec.target, config.LIFESPAN, config.FACTORY, config.APP_DIR
    )


def _server(app: ASGIApp, spec: WorkerSpec) -> WorkerServer:
    """The worker's server: the async model's core, or a fork-model parent."""
    if spec.config.MODEL == "fork":
        from .fork_worker import ForkWorker

        return ForkWorker(app, spec)
    return WorkerServer(app, spec)


def _serve(spec: WorkerSpec, sockets: list[socket.socket]) -> int:
    try:
        app = _load(spec)
    except AppImportError as exc:
        spec.slot.reason = f"Cannot load app: {exc}"  # the master logs it
        return BOOT_ERROR
    server = _server(app, spec)
    with asyncio.Runner(loop_factory=loop_factory(spec.config.LOOP)) as runner:
        return runner.run(server.run(sockets))


def _leave_masters_loop(spec: WorkerSpec) -> None:
    asyncio.events._set_running_loop(None)  # the worker's Runner makes its own
    if spec.in_child is not None:
        spec.in_child()


def worker_main(spec: WorkerSpec, blocked: Iterable[int] = ()) -> NoReturn:
    """Run in a freshly forked child: serve until stopped, then exit the process.

    ``blocked``: the signals the master blocked around fork(); a signal that
    came meanwhile is acted on once the worker's own handlers are in place.
    """
    code = 1
    try:
        _reset_signals()
        _leave_masters_loop(spec)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        os.close(spec.wake_read_fd)
        _die_with_master()
        if os.getppid() != spec.master_pid:
            os._exit(0)  # the master died before the line above
        spec.slot.heartbeat = time.monotonic()
        _print_stacks_on_request()
        logging.getLogger("qt_server").addFilter(_CoreInfoFilter())
        code = _serve(spec, spec.listeners())
    except BaseException as exc:
        spec.slot.reason = f"{type(exc).__name__}: {exc}"
        logger.exception("Worker %d failed", os.getpid())
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
