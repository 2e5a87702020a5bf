"""The ``fork`` model: a fresh process for every request.

The parent imports the apps and runs lifespan startup once, then serves
connections with the ordinary server core, except that a complete request
is not run as a task: the parent reads its body whole first
(``fork_intake.py``), then forks, and the child serves that request (and
those pipelined behind it that were complete at the fork) on a fresh event
loop, then exits. Memory, crashes, hangs and global state left by one
request die with its child.

A child never waits on its client: it reads nothing from the socket (it
peeks for a FIN, so an app still hears ``http.disconnect``). It serves the
current request and the pipelined ones that were complete at the fork, and
stops at the first that is not. The parent's state (parser, a pipelined
request whose body is still coming, the unparsed rest of a read) is its own
copy, untouched by the child, so once the child has exited the parent drops
the requests it served and goes on from there (``HTTPProtocol.reattach``):
a body or head still to come is read and timed out by the parent. The cost:
a pipelined burst takes a fork per request or two, not one per read.

The parent never reads a connection while its child owns it. A one-byte
slot per child in shared memory
tells the parent how the child left the connection: still untouched (a
crash then gets 502, a timeout 504), mid-response (close), or finished
(reuse or close).

A connection a child cannot own (TLS: its session state lives in this
process's transport) stays here: its requests run as tasks of the parent's
core with the application replaced by the relay (``relay.py``), which gets
its child from the same queue, slots and sweep as every other request. The
child's side of both kinds is ``fork_child.py``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import mmap
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from ..admin.figures import Totals
from ..admin.figures_shm import ChildBlock
from ..asgi.cycle import AppLost, HTTPCycle
from ..asgi.types import ASGIApp, Receive, Scope, Send
from ..checks import websocket_cap
from ..config import Config, ConfigError
from ..server import Server
from ..server.gate import over_limit, shed
from ..server.protocol import HTTPProtocol
from ..websocket import WebSocketSession
from .async_ import bind_with_admin, serve_with_signals
from .exits import describe_exit
from .fork_child import (
    PARENT_SIGNALS,
    REUSE,
    STOPPING,
    UNTOUCHED,
    serve_connection,
    serve_relayed,
)
from .fork_fds import ChildFds
from .fork_intake import buffer_body, drop_spool, over_websocket_cap, unlist_spool
from .fork_stop import ForkStops, kill
from .loops import loop_factory
from .relay import ChildLink, relay_app
from .stats import ProcStats

__all__ = ["CHILD_FIGURES_SIZE", "ForkServer", "run_fork"]

logger = logging.getLogger("qt_server")

#: Bytes of shared memory per child slot for the admin figures of the
#: requests the child served (120 records of 34 bytes: more kinds of request
#: than a child ever answers; pages never written take no memory).
CHILD_FIGURES_SIZE = 4096


@dataclass(slots=True)
class _Relayed:
    """A request on a connection the parent keeps: its child gets a socketpair."""

    conn: HTTPProtocol
    scope: Scope
    link: asyncio.Future[ChildLink]


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
    #: Set for a relayed request: told how the child ended.
    link: ChildLink | None = None
    #: The pipelined requests the child serves after its own (``_served``).
    pipelined: int = 0


class ForkServer(ForkStops, Server, ChildFds):
    """The server core with a dispatcher that forks a child per request."""

    def __init__(self, app: ASGIApp, config: Config) -> None:
        super().__init__(app, config)
        self.children: dict[int, _Child] = {}
        self.waiting: deque[HTTPCycle | _Relayed] = deque()
        self.slots = mmap.mmap(-1, config.MAX_PROCESSES)
        self.free_slots = list(range(config.MAX_PROCESSES - 1, -1, -1))
        self.stats = ProcStats() if config.GATHER_PROC_STATS else None
        self.state.run_cycle = self.dispatch
        # LIMIT_CONCURRENCY counts requests in children and those waiting for one
        self.state.in_flight = self._in_flight
        #: Relayed (TLS) requests from dispatch until their relay task ends;
        #: their children, counted apart so as not to count them twice.
        self.relaying = 0
        self.relayed_children = 0
        self.state.on_open = self._opened
        self.state.on_close = self._closed
        self.state.on_handshake = self._handshaking
        self.init_child_fds()  # fork_fds.py
        #: Requests whose body the parent is reading (fork_intake.py), not
        #: counted by LIMIT_CONCURRENCY until it is complete.
        self.buffering: set[HTTPCycle] = set()
        self.websocket_cap = websocket_cap(config)
        #: Relayed (TLS) WebSockets from dispatch until their relay ends.
        self.relayed_websockets = 0
        self.loop_factory = loop_factory(config.LOOP)
        #: What a child keeps referenced so that it is never freed there.
        self.inherited: object = None
        #: Children started since the server started (the admin socket's ``forked``).
        self.forked = 0
        #: While above 0, no child is forked (``hold_forks``).
        self.forks_held = 0
        #: ADMIN_ENABLED: a figures block per slot, where each child writes the
        #: requests it answers (``figures_block``, ``ChildTally``); the parent
        #: folds them into its own ``state.figures`` as it reaps the child.
        self.child_figures = (
            mmap.mmap(-1, config.MAX_PROCESSES * CHILD_FIGURES_SIZE)
            if self.state.figures is not None
            else None
        )

    # the admin socket's view -------------------------------------------------

    def totals(self) -> Totals:
        """The admin figures of the whole server now (ADMIN_ENABLED; else empty):
        the parent's own (TLS requests it relays, errors it answers itself) with
        those of every child reaped so far folded in. Children alive count as
        requests in flight, or as open WebSockets; the parent's connections as
        connections."""
        websocket_children = sum(
            1 for child in self.children.values() if child.exempt and child.link is None
        )
        return self.state.totals(websocket_children)

    def admin_counters(self) -> dict[str, int]:
        """``AdminBackend.counters()``: ``children`` alive now, ``forked`` since start."""
        return {"children": len(self.children), "forked": self.forked}

    def figures_block(self, slot: int) -> ChildBlock | None:
        """The figures block of ``slot`` (None with ADMIN_ENABLED off)."""
        if self.child_figures is None:
            return None
        return ChildBlock(self.child_figures, slot * CHILD_FIGURES_SIZE, CHILD_FIGURES_SIZE)

    def _fold_child_figures(self, slot: int) -> None:
        """The child of ``slot`` is gone: add what it served to the parent's figures."""
        block = self.figures_block(slot)
        figures = self.state.figures
        if block is not None and figures is not None:
            block.fold_into(figures)

    @contextlib.contextmanager
    def hold_forks(self) -> Iterator[None]:
        """Fork no child meanwhile (requests wait for a slot, as at MAX_PROCESSES).

        For work in a thread that may hold a lock a child would inherit held,
        for ever: the admin socket's imports (a module's import lock).
        """
        self.forks_held += 1
        try:
            yield
        finally:
            self.forks_held -= 1
            if not self.forks_held:
                asyncio.get_running_loop().call_soon(self._fork_waiting)

    # parent side -------------------------------------------------------------

    async def start_serving(self, sockets: list[socket.socket] | None = None) -> None:
        await super().start_serving(sockets)
        self.list_listeners([listener.fileno() for listener in self.sockets])

    def dispatch(self, cycle: HTTPCycle) -> None:
        if isinstance(cycle, WebSocketSession):
            if over_websocket_cap(self, cycle):
                return
        elif not cycle.body_complete:
            buffer_body(self, cycle, self._dispatch_buffered)  # no child until the body is in
            return
        self._dispatch_whole(cycle)

    def _dispatch_buffered(self, cycle: HTTPCycle) -> None:
        # LIMIT_CONCURRENCY leaves out bodies still coming (a slow upload
        # would shed every other request): it applies again now
        if self.state.limit_concurrency and over_limit(self.state):
            drop_spool(self, cycle)
            shed(cycle)
            return
        self._dispatch_whole(cycle)

    def _dispatch_whole(self, cycle: HTTPCycle) -> None:
        conn = cycle.conn
        assert isinstance(conn, HTTPProtocol)
        if conn.tls is not None:
            # A child cannot own a TLS connection (the session lives in this
            # process's transport): serve it here, relaying the app's messages.
            spawn = functools.partial(self._spawn_relayed, conn)
            # counted from now on: the relay joins ``waiting`` only once its
            # task runs, after every other request of this batch of events
            self.relaying += 1
            self.state.run_task(cycle, self._counted(relay_app(spawn), cycle))
            return
        conn.pause_reading()  # the child reads this socket from now on
        self._enqueue(cycle)

    def _counted(self, relay: ASGIApp, cycle: HTTPCycle) -> ASGIApp:
        websocket = isinstance(cycle, WebSocketSession)
        self.relayed_websockets += websocket

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await relay(scope, receive, send)
            finally:
                self.relaying -= 1
                self.relayed_websockets -= websocket
                drop_spool(self, cycle)  # if the child did not take it all

        return counted

    def _in_flight(self) -> int:
        """LIMIT_CONCURRENCY's count: relayed requests, plain ones in children or waiting.

        A waiting request whose client left no longer counts. The walk is
        short: with the limit on, no more than the limit wait.
        """
        waiting = 0
        for job in self.waiting:
            if not isinstance(job, _Relayed):
                transport = cast(HTTPProtocol, job.conn).transport
                if transport is not None and not transport.is_closing():
                    waiting += 1
        children = len(self.children) - self.relayed_children
        return self.relaying + children + waiting

    def _enqueue(self, job: HTTPCycle | _Relayed) -> None:
        self.waiting.append(job)
        if len(self.waiting) == 1:
            # Fork once the bytes already received (body, pipelined heads)
            # are parsed into the cycle, so that the child starts with them.
            asyncio.get_running_loop().call_soon(self._fork_waiting)

    async def _spawn_relayed(self, conn: HTTPProtocol, scope: Scope) -> ChildLink:
        """A child for a relayed request, once a slot is free (``relay.Spawn``)."""
        link: asyncio.Future[ChildLink] = asyncio.get_running_loop().create_future()
        self._enqueue(_Relayed(conn, scope, link))
        try:
            return await link
        except asyncio.CancelledError:
            # cancelled (a stop) just as the child started: let it see the end
            if link.done() and not link.cancelled() and link.exception() is None:
                link.result().sock.close()
                link.result().release()
            raise

    def _fork_waiting(self) -> None:
        if self.forks_held:
            return  # (hold_forks: requests wait, parsed, until it ends)
        while self.waiting and self.free_slots:
            job = self.waiting.popleft()
            if isinstance(job, _Relayed):
                self._fork_relayed(job)
            else:
                self._fork(job)

    def _fork(self, cycle: HTTPCycle) -> None:
        conn = cycle.conn
        assert isinstance(conn, HTTPProtocol)
        if conn.transport is None or conn.transport.is_closing():
            drop_spool(self, cycle)
            return
        slot = self.free_slots.pop()
        self.slots[slot] = UNTOUCHED
        unlist_spool(self, cycle)
        pipelined = _served(conn)
        pid = self._start_child(conn, slot)
        if pid == 0:
            serve_connection(self, cycle, conn, slot)  # never returns
        drop_spool(self, cycle)  # the child has the body now
        if pid < 0:
            conn.fail(503, "Service Unavailable")
            return
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # EMFILE: the parent could not watch this child
            status = self._unwatched(pid, slot, conn, exc)
            outcome = self.slots[slot]  # the child may have answered already
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                conn.reattach(outcome == REUSE, pipelined)
            else:
                conn.fail(503 if outcome == UNTOUCHED else 0, "Service Unavailable")
            return
        child = _Child(pid, pidfd, slot, conn, time.monotonic(), pipelined=pipelined)
        self._watch(child, cycle.scope)

    def _fork_relayed(self, job: _Relayed) -> None:
        conn = job.conn
        if job.link.done():
            return  # the relay gave up waiting (cancelled in a stop)
        if conn.transport is None or conn.transport.is_closing():
            job.link.set_exception(AppLost(503, "Service Unavailable"))
            return
        try:
            ours, theirs = socket.socketpair()
        except OSError as exc:  # EMFILE
            logger.error("cannot relay for %s: %s", conn.client, exc)
            job.link.set_exception(AppLost(503, "Service Unavailable"))
            return
        fd = ours.fileno()
        bisect.insort(self.child_closes, fd)  # no other child may hold it
        slot = self.free_slots.pop()
        pid = self._start_child(conn, slot)
        if pid == 0:
            serve_relayed(self, job.scope, theirs)  # never returns
        theirs.close()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.child_closes.remove(fd)

        if pid < 0:
            ours.close()
            release()
            job.link.set_exception(AppLost(503, "Service Unavailable"))
            return
        link = ChildLink(ours, asyncio.get_running_loop().create_future(), release)
        job.link.set_result(link)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # EMFILE: what the child sent is still read
            status = self._unwatched(pid, slot, conn, exc)
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            link.exited.set_result((0, "") if clean else (503, "Service Unavailable"))
            return
        child = _Child(pid, pidfd, slot, conn, time.monotonic(), link=link)
        self._watch(child, job.scope)

    def _start_child(self, conn: HTTPProtocol, slot: int) -> int:
        """fork(): the child's pid, 0 in the child, -1 (slot freed, logged) on failure."""
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)  # see PARENT_SIGNALS
        pid = -1
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN or ENOMEM: out of processes or memory
            self.free_slots.append(slot)
            logger.error("cannot fork for %s: %s", conn.client, exc)
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
        if pid > 0:
            self.forked += 1
        return pid

    def _unwatched(self, pid: int, slot: int, conn: HTTPProtocol, exc: OSError) -> int:
        """A child the parent cannot watch: killed and reaped; its wait status."""
        kill(pid)
        _, status = os.waitpid(pid, 0)
        self._fold_child_figures(slot)
        self.free_slots.append(slot)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            logger.error("cannot watch child %d for %s (%s): killed it", pid, conn.client, exc)
        return status

    def _watch(self, child: _Child, scope: Scope) -> None:
        bisect.insort(self.child_closes, child.pidfd)
        # a WebSocket lives in its child for as long as it is open
        child.exempt = scope["type"] == "websocket"
        self.children[child.pid] = child
        if child.link is not None:
            self.relayed_children += 1
        asyncio.get_running_loop().add_reader(child.pidfd, self._reap, child)

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
        if child.link is not None:
            self.relayed_children -= 1
        outcome = self.slots[child.slot]
        try:
            self._fold_child_figures(child.slot)
        except Exception:  # the figures never cost a slot or the connection
            logger.exception("child %d: its figures could not be read", child.pid)
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
        link = child.link
        gone = conn.transport is None or conn.transport.is_closing()
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and not child.timed_out:
            if link is not None:
                link.exited.set_result((0, ""))
            elif not gone:
                conn.reattach(outcome == REUSE, child.pipelined)
            return
        if gone and link is None:
            return
        if child.timed_out:
            logger.warning(
                "child %d killed after REQUEST_TIMEOUT (%.3gs)",
                child.pid,
                self.config.REQUEST_TIMEOUT,
            )
            verdict = (504, "Gateway Timeout")
        else:
            logger.error(
                "child %d %s while serving %s", child.pid, describe_exit(status), conn.client
            )
            verdict = (502, "Bad Gateway")
        if link is not None:
            link.exited.set_result(verdict)  # the relay answers, or closes
        else:
            conn.fail(verdict[0] if outcome == UNTOUCHED else 0, verdict[1])


def _served(conn: HTTPProtocol) -> int:
    """How many of ``conn``'s pipelined requests a child forked now serves after
    its own: those complete at the fork, up to the first that is not. (The
    parent may parse more while the child runs; those are its own.)"""
    served = 0
    for waiting in conn.pipeline:
        if not waiting.body_complete:
            break
        served += 1
    return served


def run_fork(app: ASGIApp, config: Config, target: str | None = None) -> int:
    """Serve ``app`` with a process per request until stopped (``target``: as run_async's)."""
    server = ForkServer(app, config)
    try:
        sockets, admin = bind_with_admin(config, None)
    except ConfigError as exc:
        print(f"qactuar: {exc}", file=sys.stderr)
        return 2
    if admin is not None:  # the admin socket: in the parent, never a child's
        from ..admin.backends import ForkBackend

        admin.backend = ForkBackend(server, target)
        admin.track_fork_children(server.child_closes)
    # pending in a child until it can act on it (fork_child.STOPPING)
    signal.pthread_sigmask(signal.SIG_BLOCK, (STOPPING,))
    with asyncio.Runner(loop_factory=loop_factory(config.LOOP)) as runner:
        return runner.run(serve_with_signals(server, sockets, admin))
