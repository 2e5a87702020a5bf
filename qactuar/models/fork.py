"""The ``fork`` model: a fresh process for every request.

The parent imports the apps and runs lifespan startup once, forks the
*zygote* (``zygote.py``: a quiet copy of itself that holds the apps and no
connection), then serves connections with the ordinary server core, except
that the application of each request is replaced by the relay
(``relay.py``). The parent parses the request, reads its body whole first
(``fork_intake.py``), and asks the zygote for a child; the child runs the
real application on a fresh event loop, with the request's ASGI messages
relayed over a socketpair, then exits. Memory, crashes, hangs and global
state left by one request die with its child; the HTTP work (parsing,
limits, keep-alive, pipelining, TLS, the WebSocket protocol) is the
parent's, in the same core as every model.

Why a zygote, and why relay: a process that forks shares its pages with
its child, so every page either writes afterwards is copied. The serving
parent writes hundreds of pages per request; the zygote writes almost
none. And a child that only runs the app beside a socketpair touches far
fewer pages than one that runs an HTTP server on the client's socket.

The parent keeps each child's slot (``MAX_PROCESSES``), its deadline
(``REQUEST_TIMEOUT``: killed, answered 504) and its fate: an exit that is not
clean is answered 502 if nothing of the response has begun, else the
connection is closed (``relay.AppLost``). Children are signalled through
pidfds the zygote sends, so a recycled pid is never hit.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..admin.figures import Totals
from ..asgi.cycle import AppLost, HTTPCycle
from ..asgi.types import ASGIApp, Receive, Scope, Send
from ..checks import websocket_cap
from ..config import Config, ConfigError
from ..server import Server
from ..server.gate import over_limit, shed
from ..server.protocol import HTTPProtocol
from ..server.sockets import bind_sockets
from ..websocket import WebSocketSession
from .async_ import bind_with_admin, serve_with_signals
from .exits import describe_exit
from .fork_child import serve_spawned
from .fork_fds import ChildFds
from .fork_intake import buffer_body, drop_spool, over_websocket_cap
from .fork_stop import ForkStops, kill
from .loops import loop_factory
from .relay import ChildLink, relay_app
from .stats import ProcStats
from .zygote import PARENT_SIGNALS, ZygoteLink, start_zygote

if TYPE_CHECKING:
    from ..admin.serve import AdminSocket

__all__ = ["ForkServer", "run_fork"]

logger = logging.getLogger("qt_server")

#: A zygote that died this soon after its start is not replaced at once:
#: requests wait that long for a slot, rather than fork a zygote in a loop.
ZYGOTE_RESPAWN_DELAY = 1.0


@dataclass(slots=True)
class _Relayed:
    """A request waiting for a child: its relay gets the child's socketpair end."""

    conn: HTTPProtocol
    scope: Scope
    link: asyncio.Future[ChildLink]


@dataclass(slots=True)
class _Child:
    #: The zygote's answer for this spawn request.
    token: int
    slot: int
    conn: HTTPProtocol
    started: float
    link: ChildLink
    zygote: ZygoteLink
    #: Not subject to REQUEST_TIMEOUT (a WebSocket).
    exempt: bool = False
    timed_out: bool = False
    #: Known once the zygote says it forked the child.
    pid: int = 0
    pidfd: int = -1
    #: No pidfd came with it (out of descriptors): the zygote killed it for us.
    unwatched: bool = False


class ForkServer(ForkStops, Server, ChildFds):
    """The server core with every application replaced by a relay to a fresh child."""

    def __init__(self, app: ASGIApp, config: Config) -> None:
        super().__init__(app, config)
        #: Children the zygote has forked, by pid.
        self.children: dict[int, _Child] = {}
        #: Children asked of the zygote and not yet reported forked, by token.
        self.spawning: dict[int, _Child] = {}
        self._tokens = itertools.count(1)
        self.waiting: deque[_Relayed] = deque()
        self.free_slots = list(range(config.MAX_PROCESSES - 1, -1, -1))
        self.stats = ProcStats() if config.GATHER_PROC_STATS else None
        self.state.run_cycle = self.dispatch
        # LIMIT_CONCURRENCY counts requests in children and those waiting for one
        self.state.in_flight = lambda: self.relaying
        #: Requests from dispatch until their relay task ends.
        self.relaying = 0
        self.state.on_open = self._opened
        self.state.on_close = self._closed
        self.state.on_handshake = self._handshaking
        self.init_child_fds()  # fork_fds.py
        #: Requests whose body the parent is reading (fork_intake.py), not
        #: counted by LIMIT_CONCURRENCY until it is complete.
        self.buffering: set[HTTPCycle] = set()
        self.websocket_cap = websocket_cap(config)
        #: WebSockets from dispatch until their relay ends.
        self.relayed_websockets = 0
        self.loop_factory = loop_factory(config.LOOP)
        #: Children started since the server started (the admin socket's ``forked``).
        self.forked = 0
        #: While above 0, no zygote is forked (``hold_forks``).
        self.forks_held = 0
        #: The zygote new children come from; those retired (after a change
        #: of apps or config) until their last child is reported.
        self.zygote: ZygoteLink | None = None
        self.retired: set[ZygoteLink] = set()
        self._zygote_started = 0.0
        self._zygote_due: asyncio.TimerHandle | None = None
        #: The admin socket (ADMIN_ENABLED), bound at start, served from
        #: ``start_serving`` on; ``admin_target`` is what it lists as the app.
        self.admin: AdminSocket | None = None
        self.admin_target: str | None = None
        #: Set once graceful time is over (``ForkStops.shutdown``): children
        #: are killed, even those the zygote reports forked from now on, and
        #: no zygote is forked any more.
        self.stopping = False

    # the admin socket's view -------------------------------------------------

    def totals(self) -> Totals:
        """The admin figures of the whole server now (ADMIN_ENABLED; else empty):
        every request is answered by this process's core (its app runs in a
        child), so its figures are the server's."""
        return self.state.totals()

    def admin_counters(self) -> dict[str, int]:
        """``AdminBackend.counters()``: ``children`` alive now, ``forked`` since start."""
        return {"children": len(self.children), "forked": self.forked}

    @contextlib.contextmanager
    def hold_forks(self) -> Iterator[None]:
        """Fork no zygote meanwhile (requests wait for one if there is none).

        For work in a thread that may hold a lock a zygote would inherit held,
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
        if sockets is None:
            sockets = bind_sockets(self.config)
        self.list_listeners([sock.fileno() for sock in sockets])
        # The zygote first, before any connection and before the admin app is
        # imported: its heap is then the smallest (with the admin app in it,
        # 1.8 MiB more, every fork and exit cost 8% more).
        self._current_zygote()
        admin = self.admin
        try:
            if admin is not None:
                from ..admin.backends import ForkBackend

                admin.backend = ForkBackend(self, self.admin_target)  # (before any request)
            await super().start_serving(sockets)
            if admin is not None:
                await admin.start()
        except BaseException:
            if self.zygote is not None:  # (no stop follows: it must not outlive this)
                self.zygote.retire()
            raise

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
        # counted from now on: the relay joins ``waiting`` only once its
        # task runs, after every other request of this batch of events
        self.relaying += 1
        spawn = functools.partial(self._spawn, conn)
        self.state.run_task(cycle, self._counted(relay_app(spawn), cycle))

    def _counted(self, relay: ASGIApp, cycle: HTTPCycle) -> ASGIApp:
        websocket = isinstance(cycle, WebSocketSession)
        self.relayed_websockets += websocket

        # the relay's read-ahead pump reads the cycle without counting a
        # half-closed client as gone (a WebSocket session's has no such effect)
        pump = None if websocket else cycle.relay_receive

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await relay(scope, pump or receive, send)
            finally:
                self.relaying -= 1
                self.relayed_websockets -= websocket
                drop_spool(self, cycle)  # if the child did not take it all

        return counted

    async def _spawn(self, conn: HTTPProtocol, scope: Scope) -> ChildLink:
        """A child for a relayed request, once a slot is free (``relay.Spawn``)."""
        link: asyncio.Future[ChildLink] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Relayed(conn, scope, link))
        self._fork_waiting()
        try:
            return await link
        except asyncio.CancelledError:
            # cancelled (a stop) just as the child started: let it see the end
            if link.done() and not link.cancelled() and link.exception() is None:
                link.result().sock.close()
                link.result().release()
            raise

    def _fork_waiting(self) -> None:
        while self.waiting and self.free_slots:
            zygote = self._current_zygote()
            if zygote is None:
                if self.stopping:  # no zygote will come: answer, rather than hold them
                    for job in self.waiting:
                        if not job.link.done():
                            job.link.set_exception(AppLost(503, "Service Unavailable"))
                    self.waiting.clear()
                return  # (requests wait, parsed, until there is one)
            self._start_child(zygote, self.waiting.popleft())

    def _start_child(self, zygote: ZygoteLink, job: _Relayed) -> None:
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
        bisect.insort(self.child_closes, fd)  # no zygote forked later may hold it
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.child_closes.remove(fd)

        token = next(self._tokens)
        if not zygote.spawn(token, theirs):  # the zygote is gone: this request waits for the next
            ours.close()
            release()
            self.waiting.appendleft(job)
            self._zygote_lost(zygote)
            return
        link = ChildLink(ours, asyncio.get_running_loop().create_future(), release)
        child = _Child(token, self.free_slots.pop(), conn, time.monotonic(), link, zygote)
        child.exempt = job.scope["type"] == "websocket"  # open as long as it lasts
        self.spawning[token] = child
        job.link.set_result(link)

    # the zygote's news ------------------------------------------------------------

    def _current_zygote(self) -> ZygoteLink | None:
        """The zygote, forked now if there is none (None while it cannot be)."""
        if self.zygote is not None:
            return self.zygote
        if self.forks_held or self.stopping or self._zygote_due is not None:
            return None
        loop = asyncio.get_running_loop()
        wait = self._zygote_started + ZYGOTE_RESPAWN_DELAY - time.monotonic()
        if self._zygote_started and wait > 0:
            self._zygote_due = loop.call_later(wait, self._zygote_time)
            return None
        self._zygote_started = time.monotonic()
        try:
            pid, ctl = start_zygote(
                self.child_closes, self._serve_spawned, self._fork, self.config.FORK_AHEAD
            )
        except OSError as exc:  # EAGAIN, ENOMEM, EMFILE
            logger.error("cannot fork the zygote: %s", exc)
            self._zygote_due = loop.call_later(ZYGOTE_RESPAWN_DELAY, self._zygote_time)
            return None
        self.zygote = ZygoteLink(
            pid, ctl, self._forked, self._failed, self._exited, self._zygote_gone
        )
        bisect.insort(self.child_closes, self.zygote.fd)  # no later zygote may hold it
        logger.debug("zygote %d forked", pid)
        return self.zygote

    def _zygote_time(self) -> None:
        self._zygote_due = None
        self._fork_waiting()

    def _serve_spawned(self, sock: socket.socket, ahead: bool) -> NoReturn:
        serve_spawned(self, sock, ahead)

    def _fork(self) -> int:
        """fork() of this process, its stop signals blocked across (``PARENT_SIGNALS``)."""
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
        return pid

    def refresh_zygote(self) -> None:
        """The apps or the config changed: children from now on come from a new zygote."""
        zygote = self.zygote
        if zygote is not None:
            self.zygote = None
            self._zygote_started = 0.0
            self.retired.add(zygote)
            zygote.retire()
        self._fork_waiting()

    def _forked(self, token: int, pid: int, pidfd: int) -> None:
        child = self.spawning.pop(token, None)
        if child is None:  # (its zygote was given up for dead meanwhile)
            if pidfd >= 0:
                kill(pidfd)
                os.close(pidfd)
            return
        child.pid, child.pidfd = pid, pidfd
        self.children[pid] = child
        self.forked += 1
        if pidfd < 0:
            # the parent could never stop it: it must not run (it may have
            # answered already; its exit status says)
            child.unwatched = True
            child.zygote.kill(pid)
            return
        bisect.insort(self.child_closes, pidfd)
        if child.timed_out or self.stopping:
            kill(pidfd)

    def kill_child(self, child: _Child) -> None:
        """SIGKILL ``child``: through its pidfd, or its zygote (killed once forked
        if it is not yet)."""
        if child.pidfd >= 0:
            kill(child.pidfd)
        elif child.pid:
            child.zygote.kill(child.pid)

    def _failed(self, token: int, reason: str) -> None:
        child = self.spawning.pop(token, None)
        if child is not None:
            logger.error("cannot fork for %s: %s", child.conn.client, reason)
            self._ended(child, (503, "Service Unavailable"))

    def _exited(
        self, zygote: ZygoteLink, pid: int, status: int, user: float, system: float, maxrss: int
    ) -> None:
        child = self.children.get(pid)
        if child is None or child.zygote is not zygote:
            return
        del self.children[pid]
        wall = time.monotonic() - child.started
        if self.stats is not None:
            self.stats.add(wall, user, system, maxrss)
            logger.debug(
                "child %d: %.1f ms wall, %.1f ms user, %.1f ms sys, %d KiB peak RSS",
                pid,
                wall * 1000,
                user * 1000,
                system * 1000,
                maxrss,
            )
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and not child.timed_out:
            self._ended(child, (0, ""))
        elif child.timed_out:
            logger.warning(
                "child %d killed after REQUEST_TIMEOUT (%.3gs)", pid, self.config.REQUEST_TIMEOUT
            )
            self._ended(child, (504, "Gateway Timeout"))
        elif child.unwatched:
            logger.error("cannot watch child %d for %s (out of descriptors): killed it",
                         pid, child.conn.client)  # fmt: skip
            self._ended(child, (503, "Service Unavailable"))
        else:
            logger.error(
                "child %d %s while serving %s", pid, describe_exit(status), child.conn.client
            )
            self._ended(child, (502, "Bad Gateway"))

    def _ended(self, child: _Child, verdict: tuple[int, str]) -> None:
        """``child`` is gone: its slot is free, its relay told (it answers, or closes)."""
        if child.pidfd >= 0:
            os.close(child.pidfd)
            self.child_closes.remove(child.pidfd)
            child.pidfd = -1
        self.free_slots.append(child.slot)
        if not child.link.exited.done():
            child.link.exited.set_result(verdict)
        self._fork_waiting()

    def _zygote_lost(self, zygote: ZygoteLink) -> None:
        """``zygote`` stopped answering: the next child comes from a new one."""
        if zygote is self.zygote:
            self.zygote = None
            self.retired.add(zygote)  # until its end is read (``_zygote_gone``)
            zygote.retire()  # (if it is alive after all, it leaves once done)
            if not self.stopping:
                logger.error("the zygote %d died; forking another", zygote.pid)

    def _zygote_gone(self, zygote: ZygoteLink) -> None:
        self._zygote_lost(zygote)
        self.retired.discard(zygote)
        if zygote.fd in self.child_closes:
            self.child_closes.remove(zygote.fd)
        lost = [c for c in (*self.spawning.values(), *self.children.values()) if c.zygote is zygote]
        for child in lost:
            # its exit can no longer be told: kill it, and answer for it
            self.spawning.pop(child.token, None)
            self.children.pop(child.pid, None)
            if child.pidfd >= 0:
                kill(child.pidfd)
            verdict = (504, "Gateway Timeout") if child.timed_out else (502, "Bad Gateway")
            self._ended(child, verdict)
        self._fork_waiting()


def run_fork(app: ASGIApp, config: Config, target: str | None = None) -> int:
    """Serve ``app`` with a process per request until stopped (``target``: as run_async's)."""
    server = ForkServer(app, config)
    try:
        sockets, admin = bind_with_admin(config, None)
    except ConfigError as exc:
        print(f"qactuar: {exc}", file=sys.stderr)
        return 2
    if admin is not None:  # the admin socket: in the parent, never a child's
        admin.track_fork_children(server.child_closes)
        server.admin, server.admin_target = admin, target
    with asyncio.Runner(loop_factory=loop_factory(config.LOOP)) as runner:
        return runner.run(_serve(server, sockets, admin))


async def _serve(
    server: ForkServer, sockets: list[socket.socket] | None, admin: AdminSocket | None
) -> int:
    """``serve_with_signals``, the admin socket served from the zygote's fork on
    (``ForkServer.start_serving``) and stopped after the server."""
    try:
        return await serve_with_signals(server, sockets)
    finally:
        if admin is not None:
            await admin.stop(now=server.force_exit)
