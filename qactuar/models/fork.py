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

import asyncio
import gc
import logging
import mmap
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass

from ..asgi.cycle import HTTPCycle
from ..asgi.types import ASGIApp
from ..config import Config
from ..server import Server
from ..server.protocol import HTTPProtocol
from ..websocket import WebSocketSession
from .async_ import serve_with_signals
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
        self._loop_factory = loop_factory(config.LOOP)
        self._inherited: object = None

    # parent side -------------------------------------------------------------

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
        pidfd = os.pidfd_open(pid)
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
        self._settle(child, status, outcome)
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
        if os.WIFSIGNALED(status):
            how = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        logger.error("child %d %s while serving %s", child.pid, how, conn.client)
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
            signal.set_wakeup_fd(-1)
            # Ctrl-C and a service manager's SIGTERM reach the whole process
            # group; the parent decides when a child must go (SIGKILL).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            for signum in (signal.SIGCHLD, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            # The parent's objects (its loop, transports, sockets) must never
            # be freed here: their finalizers would close descriptors this
            # child still uses or unregister the parent's fds from the epoll
            # instance both processes share. Keep them all, forever.
            gc.freeze()
            self._inherited = (conn.transport, self.state.connections, self.state.tasks)
            sock = self._close_inherited(conn)
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

    def _close_inherited(self, conn: HTTPProtocol) -> socket.socket:
        """Close the parent's sockets except this connection's; return it."""
        assert conn.transport is not None
        own = conn.transport.get_extra_info("socket").fileno()
        fds = [listener.fileno() for listener in self.sockets]
        fds.extend(child.pidfd for child in self.children.values())
        for other in self.state.connections:
            if other is not conn and other.transport is not None:
                fds.append(other.transport.get_extra_info("socket").fileno())
        for fd in fds:
            if fd >= 0 and fd != own:
                try:
                    os.close(fd)
                except OSError:
                    pass
        return socket.socket(fileno=own)

    async def _child_serve(
        self, cycle: HTTPCycle, conn: HTTPProtocol, sock: socket.socket, slot: int
    ) -> bool:
        loop = asyncio.get_running_loop()
        state = self.state
        state.connections = set()
        state.tasks = set()
        state.run_cycle = state.run_task
        finished: asyncio.Future[bool] = loop.create_future()

        def idle(_: HTTPProtocol) -> None:
            if not finished.done():
                finished.set_result(True)

        def mark_responding() -> None:
            self.slots[slot] = _RESPONDING

        # The parent holds this socket too, so closing ours sends no FIN:
        # shut it down instead, so the client sees the end at once even while
        # the app goes on (after a WebSocket close handshake, say).
        shut = socket.socket(fileno=os.dup(sock.fileno()))
        self._inherited = (self._inherited, shut)

        def closed(_: HTTPProtocol) -> None:
            try:
                shut.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if not finished.done():
                finished.set_result(False)

        state.on_idle = idle
        state.on_close = closed
        conn.on_write = mark_responding
        loop.add_signal_handler(GOING_AWAY, lambda: conn.going_away())
        transport, _ = await loop.connect_accepted_socket(lambda: conn, sock)
        state.run_cycle(cycle)
        keep_alive = await finished
        if keep_alive:
            # every response byte must leave this process before it exits
            transport.set_write_buffer_limits(0)  # type: ignore[attr-defined]
            await conn.drain()
        if state.tasks:
            # the app may go on after its response (background tasks)
            await asyncio.wait(list(state.tasks))
        return keep_alive


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
