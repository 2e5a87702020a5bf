"""The ``fork`` model: a fresh process for every request.

The parent imports the apps and runs lifespan startup once, then serves
connections with the ordinary server core, except that a complete request
head is not run as a task: the parent forks, and the child serves that
request (and any already pipelined behind it) on a fresh event loop, then
exits. Memory, crashes, hangs and global state left by one request die with
its child.

The parent never reads a connection while its child owns it. The child ends
only between requests, so the parent takes the connection back with a fresh
parser when keep-alive allows. A one-byte slot per child in shared memory
tells the parent how the child left the connection: still untouched (a
crash then gets 502, a timeout 504), mid-response (close), or finished
(reuse or close).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (no stubs)
import asyncio
import bisect
import gc
import logging
import mmap
import os
import signal
import socket
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass

from ..asgi.cycle import HTTPCycle
from ..asgi.types import ASGIApp
from ..config import Config
from ..server import Server
from ..server.protocol import HTTPProtocol
from ..websocket import WebSocketSession
from .async_ import serve_with_signals
from .exits import describe_exit
from .loops import loop_factory
from .stats import ProcStats

__all__ = ["ForkServer", "run_fork"]

logger = logging.getLogger("qt_server")
child_logger = logging.getLogger("qt_child")

#: Sent by the parent when graceful time is up: a child closes its WebSocket
#: with 1001 (the parent cannot: the session lives in the child).
GOING_AWAY = signal.SIGUSR1

# slot values: what the child did with its connection
_UNTOUCHED, _RESPONDING, _REUSE, _CLOSE = 0, 1, 2, 3


@dataclass(slots=True)
class _Child:
    pid: int
    pidfd: int
    slot: int
    conn: HTTPProtocol
    started: float
    timed_out: bool = False
    #: Not subject to REQUEST_TIMEOUT (a WebSocket).
    exempt: bool = False


class ForkServer(Server):
    """The server core with a dispatcher that forks a child per request."""

    def __init__(self, app: ASGIApp, config: Config) -> None:
        super().__init__(app, config)
        self.children: dict[int, _Child] = {}
        self.waiting: deque[HTTPCycle] = deque()
        self.slots = mmap.mmap(-1, config.MAX_PROCESSES)
        self.free_slots = list(range(config.MAX_PROCESSES - 1, -1, -1))
        self.stats = ProcStats() if config.GATHER_PROC_STATS else None
        self.state.run_cycle = self.dispatch
        # LIMIT_CONCURRENCY counts requests in children and those waiting for one
        self.state.in_flight = lambda: len(self.children) + len(self.waiting)
        self.state.on_open = self._opened
        self.state.on_close = self._closed
        #: Descriptors a child closes at once: the listeners, every client's
        #: socket, the pidfds; sorted. Kept up to date here so that a child
        #: closes them from one compact array, mostly in runs of consecutive
        #: numbers, instead of walking (and so copying) the parent's
        #: connection objects. Every number in it is open in the parent.
        self.child_closes = array("i")
        self._client_fds: dict[HTTPProtocol, int] = {}
        self._listeners: list[int] = []
        self._loop_factory = loop_factory(config.LOOP)
        self._inherited: object = None

    # parent side -------------------------------------------------------------

    async def start_serving(self, sockets: list[socket.socket] | None = None) -> None:
        await super().start_serving(sockets)
        self._listeners = [listener.fileno() for listener in self.sockets]
        for fd in self._listeners:
            bisect.insort(self.child_closes, fd)

    def _opened(self, conn: HTTPProtocol) -> None:
        fd = self._client_fds[conn] = _fileno(conn)
        bisect.insort(self.child_closes, fd)

    def _closed(self, conn: HTTPProtocol) -> None:
        fd = self._client_fds.pop(conn, None)
        if fd is not None:
            self.child_closes.remove(fd)

    def dispatch(self, cycle: HTTPCycle) -> None:
        conn = cycle.conn
        assert isinstance(conn, HTTPProtocol)
        conn.pause_reading()  # the child reads this socket from now on
        self.waiting.append(cycle)
        if len(self.waiting) == 1:
            # Fork once the bytes already received (body, pipelined heads)
            # are parsed into the cycle, so that the child starts with them.
            asyncio.get_running_loop().call_soon(self._fork_waiting)

    def _fork_waiting(self) -> None:
        while self.waiting and self.free_slots:
            self._fork(self.waiting.popleft())

    def _fork(self, cycle: HTTPCycle) -> None:
        conn = cycle.conn
        assert isinstance(conn, HTTPProtocol)
        if conn.transport is None or conn.transport.is_closing():
            return
        slot = self.free_slots.pop()
        self.slots[slot] = _UNTOUCHED
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN or ENOMEM: out of processes or memory
            self.free_slots.append(slot)
            logger.error("cannot fork for %s: %s", conn.client, exc)
            conn.fail(503, "Service Unavailable")
            return
        if pid == 0:
            self._child(cycle, conn, slot)  # never returns
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # EMFILE: the parent could not watch this child
            _kill(pid)
            _, status = os.waitpid(pid, 0)
            self.free_slots.append(slot)
            outcome = self.slots[slot]  # the child may have answered already
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                conn.reattach(keep_alive=outcome == _REUSE)
                return
            logger.error("cannot watch child %d for %s (%s): killed it", pid, conn.client, exc)
            conn.fail(503 if outcome == _UNTOUCHED else 0, "Service Unavailable")
            return
        bisect.insort(self.child_closes, pidfd)
        child = _Child(pid, pidfd, slot, conn, time.monotonic())
        # a WebSocket lives in its child for as long as it is open
        child.exempt = isinstance(cycle, WebSocketSession)
        self.children[pid] = child
        asyncio.get_running_loop().add_reader(pidfd, self._reap, child)

    def _reap(self, child: _Child) -> None:
        try:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        except ChildProcessError:
            status, usage = 0, None
        else:
            if pid == 0:
                return  # not exited yet (spurious wake-up)
        asyncio.get_running_loop().remove_reader(child.pidfd)
        os.close(child.pidfd)
        self.child_closes.remove(child.pidfd)
        del self.children[child.pid]
        outcome = self.slots[child.slot]
        self.free_slots.append(child.slot)
        wall = time.monotonic() - child.started
        if self.stats is not None and usage is not None:
            self.stats.add(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)
            logger.debug(
                "child %d: %.1f ms wall, %.1f ms user, %.1f ms sys, %d KiB peak RSS",
                child.pid,
                wall * 1000,
                usage.ru_utime * 1000,
                usage.ru_stime * 1000,
                usage.ru_maxrss,
            )
        try:
            self._settle(child, status, outcome)
        except Exception:
            # a bug here must cost one connection, not stall every waiting one
            logger.exception("taking back the connection of child %d failed", child.pid)
            child.conn.close()
        self._fork_waiting()

    def _settle(self, child: _Child, status: int, outcome: int) -> None:
        conn = child.conn
        if conn.transport is None or conn.transport.is_closing():
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and not child.timed_out:
            conn.reattach(keep_alive=outcome == _REUSE)
            return
        if child.timed_out:
            logger.warning(
                "child %d killed after REQUEST_TIMEOUT (%.3gs)",
                child.pid,
                self.config.REQUEST_TIMEOUT,
            )
            conn.fail(504 if outcome == _UNTOUCHED else 0, "Gateway Timeout")
            return
        logger.error("child %d %s while serving %s", child.pid, describe_exit(status), conn.client)
        conn.fail(502 if outcome == _UNTOUCHED else 0, "Bad Gateway")

    async def check_children(self) -> None:
        """Sweep every CHECK_PROCESS_INTERVAL: kill children past REQUEST_TIMEOUT."""
        timeout = self.config.REQUEST_TIMEOUT
        while True:
            await asyncio.sleep(self.config.CHECK_PROCESS_INTERVAL)
            if not timeout:
                continue
            now = time.monotonic()
            for child in list(self.children.values()):
                if not child.timed_out and not child.exempt and now - child.started > timeout:
                    child.timed_out = True
                    _kill(child.pid)

    async def main_loop(self) -> None:
        sweep = asyncio.get_running_loop().create_task(self.check_children())
        try:
            await super().main_loop()
        finally:
            sweep.cancel()

    def going_away(self) -> int:
        """WebSockets live in children: ask each child to close its own with 1001."""
        told = 0
        for child in list(self.children.values()):
            if child.exempt:
                try:
                    os.kill(child.pid, GOING_AWAY)
                    told += 1
                except ProcessLookupError:
                    pass
        return told + super().going_away()

    async def shutdown(self) -> None:
        # the listeners close now: their numbers may soon name other files
        for fd in self._listeners:
            self.child_closes.remove(fd)
        self._listeners = []
        await super().shutdown()
        for child in list(self.children.values()):
            _kill(child.pid)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # child side ----------------------------------------------------------------

    def _child(self, cycle: HTTPCycle, conn: HTTPProtocol, slot: int) -> None:
        code = 1
        try:
            # A child touches as little of the parent's memory as it can:
            # every page it writes is copied. Hence ``_signal`` (the
            # ``signal`` module's wrappers convert to and from enums).
            _signal.set_wakeup_fd(-1)
            # Ctrl-C and a service manager's SIGTERM reach the whole process
            # group; the parent decides when a child must go (SIGKILL).
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
            _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
            # The parent's objects (its loop, transports, sockets) must never
            # be freed here: their finalizers would close descriptors this
            # child still uses or unregister the parent's fds from the epoll
            # instance both processes share. Keep them all, forever.
            gc.freeze()
            self._inherited = (conn.transport, self.state.connections, self.state.tasks)
            own = self._client_fds[conn]
            _close_all_but(self.child_closes, own)
            sock = socket.socket(fileno=own)
            asyncio.events._set_running_loop(None)
            loop = self._loop_factory()
            asyncio.set_event_loop(loop)
            keep_alive = loop.run_until_complete(self._child_serve(cycle, conn, sock, slot))
            self.slots[slot] = _REUSE if keep_alive else _CLOSE
            code = 0
        except BaseException:
            child_logger.exception("child %d failed", os.getpid())
        finally:
            os._exit(code)

    async def _child_serve(
        self, cycle: HTTPCycle, conn: HTTPProtocol, sock: socket.socket, slot: int
    ) -> bool:
        loop = asyncio.get_running_loop()
        state = self.state
        state.connections = set()
        state.tasks = set()
        finished: asyncio.Future[bool] = loop.create_future()

        def idle(_: HTTPProtocol) -> None:
            if not finished.done():
                finished.set_result(True)

        def mark_responding() -> None:
            self.slots[slot] = _RESPONDING

        # The parent holds this socket too, so closing ours sends no FIN:
        # shut it down instead, so the client sees the end at once even while
        # the app goes on (after a WebSocket close handshake, say).
        shut_fd = os.dup(sock.fileno())

        def closed(_: HTTPProtocol) -> None:
            shut = socket.socket(fileno=shut_fd)
            self._inherited = (self._inherited, shut)
            try:
                shut.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if not finished.done():
                finished.set_result(False)

        def run_cycle(cycle: HTTPCycle) -> None:
            if isinstance(cycle, WebSocketSession) and not loop.is_closed():
                # the parent asks a child to close its WebSocket with 1001
                loop.add_signal_handler(GOING_AWAY, conn.going_away)
            state.run_task(cycle)

        state.on_open = None
        state.limit_concurrency = 0  # pipelined requests here were let in already
        state.on_idle = idle
        state.on_close = closed
        state.run_cycle = run_cycle
        conn.on_write = mark_responding
        transport, _ = await loop.connect_accepted_socket(lambda: conn, sock)
        run_cycle(cycle)
        keep_alive = await finished
        if keep_alive:
            # every response byte must leave this process before it exits
            transport.set_write_buffer_limits(0)  # type: ignore[attr-defined]
            await conn.drain()
        if state.tasks:
            # the app may go on after its response (background tasks)
            await asyncio.wait(list(state.tasks))
        return keep_alive


def _close_all_but(fds: array[int], own: int) -> None:
    """Close the sorted ``fds`` except ``own``, a run of consecutive numbers at a time.

    Clients accepted one after another hold consecutive numbers, so a few
    ``close_range`` calls close thousands of them.
    """
    start = end = -1
    for fd in fds:
        if fd == end or fd == end - 1:  # the next of the run (or a duplicate)
            end = fd + 1
            continue
        if start >= 0:
            _close_range(start, end, own)
        start, end = fd, fd + 1
    if start >= 0:
        _close_range(start, end, own)


def _close_range(start: int, end: int, own: int) -> None:
    if start <= own < end:
        os.closerange(start, own)
        os.closerange(own + 1, end)
    else:
        os.closerange(start, end)


def _fileno(conn: HTTPProtocol) -> int:
    assert conn.transport is not None
    return int(conn.transport.get_extra_info("socket").fileno())


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_fork(app: ASGIApp, config: Config) -> int:
    """Serve ``app`` with a process per request until stopped."""
    server = ForkServer(app, config)
    with asyncio.Runner(loop_factory=loop_factory(config.LOOP)) as runner:
        return runner.run(serve_with_signals(server, None))
