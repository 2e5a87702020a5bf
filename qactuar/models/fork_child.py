"""What a fork-model child runs, from the moment ``os.fork()`` returns 0 to ``os._exit``.

Two kinds of child, one set-up (``_enter``): signals reset, the parent's
objects frozen out of the collector's reach, every inherited descriptor the
parent listed closed (listeners, other clients, pidfds, other relays'
socketpairs), and a fresh event loop.

- ``serve_connection``: the child owns a plain TCP connection. It serves the
  request (and those pipelined behind it that were complete at the fork)
  with the server core on its own loop, reading nothing from the socket
  (it peeks for a FIN), writes in the shared slot how it left the
  connection, and exits; the parent goes on from where the child stopped.
- ``serve_relayed``: the parent keeps the connection (TLS) and the child
  runs the application with its messages relayed over a socketpair
  (``relay.py``).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (no stubs)
import asyncio
import gc
import logging
import os
import signal
import socket
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from ..admin.figures_shm import ChildTally
from ..asgi.cycle import HTTPCycle
from ..asgi.types import Scope
from ..server.protocol import HTTPProtocol
from ..server.stalls import Stalls
from ..websocket import WebSocketSession
from .relay import serve_in_child

if TYPE_CHECKING:
    from ..server.server import ServerState
    from .fork import ForkServer

__all__ = ["GOING_AWAY", "PARENT_SIGNALS", "STOPPING", "serve_connection", "serve_relayed"]

child_logger = logging.getLogger("qt_child")

#: Sent by the parent when graceful time is up: a child closes its WebSocket
#: with 1001 (the parent cannot: the session lives in the child).
GOING_AWAY = signal.SIGUSR1
#: Sent by the parent when a graceful stop begins: a child serving HTTP
#: answers with ``Connection: close`` from then on, as every model does in a
#: stop. The parent keeps it blocked, so a child forked just before the stop
#: holds it pending until its handler is in place (``_serve``).
STOPPING = signal.SIGUSR2

#: The parent's stop signals. A child that got one before ``_enter`` ignores
#: it would run the parent's handler, which hands the signal to the parent's
#: event loop through the wakeup descriptor both processes share: the parent
#: would stop (or take a single Ctrl-C for a second one). The parent blocks
#: them around fork(); ``_enter`` unblocks them once they are ignored.
PARENT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# slot values: what the child did with its connection
UNTOUCHED, RESPONDING, REUSE, CLOSE = 0, 1, 2, 3


def _enter(server: ForkServer, own: int) -> asyncio.AbstractEventLoop:
    """The child's set-up; returns its new event loop."""
    # A child touches as little of the parent's memory as it can: every page
    # it writes is copied. Hence ``_signal`` (the ``signal`` module's
    # wrappers convert to and from enums).
    _signal.set_wakeup_fd(-1)
    # Ctrl-C and a service manager's SIGTERM reach the whole process group;
    # the parent decides when a child must go (SIGKILL).
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, PARENT_SIGNALS)
    # The parent's objects (its loop, transports, sockets) must never be
    # freed here: their finalizers would close descriptors this child still
    # uses or unregister the parent's fds from the epoll instance both
    # processes share. Keep them all, forever.
    gc.freeze()
    _close_all_but(server.child_closes, own)
    asyncio.events._set_running_loop(None)
    loop = server.loop_factory()
    asyncio.set_event_loop(loop)
    return loop


def serve_connection(
    server: ForkServer, cycle: HTTPCycle, conn: HTTPProtocol, slot: int
) -> NoReturn:
    code = 1
    try:
        server.inherited = (conn.transport, server.state.connections, server.state.tasks)
        own = server.client_fd(conn)
        loop = _enter(server, own)
        _tally_into_slot(server, conn, cycle, slot)
        sock = socket.socket(fileno=own)
        keep_alive = loop.run_until_complete(_serve(server, cycle, conn, sock, slot))
        server.slots[slot] = REUSE if keep_alive else CLOSE
        code = 0
    except BaseException:
        child_logger.exception("child %d failed", os.getpid())
    finally:
        os._exit(code)


def _tally_into_slot(server: ForkServer, conn: HTTPProtocol, cycle: HTTPCycle, slot: int) -> None:
    """ADMIN_ENABLED: what this child answers goes into its slot's figures
    block, which the parent folds in as it reaps the child: its request, those
    pipelined behind it (made in the parent), and any it makes itself."""
    recorder, block = server.state.figures, server.figures_block(slot)
    if recorder is not None and block is not None:
        tally = server.state.tally = ChildTally(recorder, block)
        for each in (cycle, *conn.pipeline):
            each.figures = tally


def serve_relayed(server: ForkServer, scope: Scope, sock: socket.socket) -> NoReturn:
    code = 1
    try:
        loop = _enter(server, sock.fileno())
        loop.run_until_complete(serve_in_child(server.app, scope, sock))
        code = 0
    except BaseException:
        child_logger.exception("child %d failed", os.getpid())
    finally:
        os._exit(code)


async def _serve(
    server: ForkServer, cycle: HTTPCycle, conn: HTTPProtocol, sock: socket.socket, slot: int
) -> bool:
    loop = asyncio.get_running_loop()
    state = server.state
    state.connections = set()
    state.tasks = set()
    finished: asyncio.Future[bool] = loop.create_future()

    read_anyway: list[bool] = []

    def idle(_: HTTPProtocol) -> None:
        if read_anyway:
            conn.close()  # it read bytes its parent never saw: no hand-back (``closed``)
        elif not finished.done():
            finished.set_result(True)

    def mark_responding() -> None:
        server.slots[slot] = RESPONDING

    # The parent holds this socket too, so closing ours sends no FIN: shut it
    # down instead, so the client sees the end at once even while the app
    # goes on (after a WebSocket close handshake, say).
    shut_fd = os.dup(sock.fileno())

    def closed(_: HTTPProtocol) -> None:
        shut = socket.socket(fileno=shut_fd)
        server.inherited = (server.inherited, shut)
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

    # This child serves the request and those pipelined behind it that were
    # complete at the fork, and reads nothing more: the socket's later bytes,
    # and the bytes the parent had read but not yet parsed, are the parent's
    # once this child hands the connection back (``HandBack.reattach``).
    # A WebSocket session reads its frames here, for its whole life.
    conn.reads_nothing = conn._ws is None
    state.on_open = None
    state.limit_concurrency = 0  # pipelined requests here were let in already
    state.on_idle = idle
    state.on_close = closed
    state.run_cycle = run_cycle
    # The sweep (SEND_TIMEOUT, and the read timeouts of a child that reads)
    # runs only once needed: a bodyless GET whose client reads its answer
    # never starts it.
    sweeping: list[asyncio.Task[None]] = []

    def sweep_from_now() -> None:
        if not sweeping:
            sweeping.append(loop.create_task(_sweep(state)))

    # SEND_TIMEOUT here: the parent's are not ours
    state.stalls = _ChildStalls(state.stalls.timeout, sweep_from_now)
    conn.on_write = mark_responding
    hand_back = conn.reads_nothing
    if hand_back:
        # uvloop starts reading once connection_made returns, whatever it
        # did: until reading is paused below, only a FIN (or more bytes than
        # the low-water mark) makes the socket readable. The mark is half
        # the receive buffer: a higher one makes Linux grow the buffer to
        # match (up to tcp_rmem's max, 32 MiB here, kernel memory a client
        # could then fill on every connection); more than that already
        # queued is the rare case below.
        buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, buffer // 2))
    transport, _ = await loop.connect_accepted_socket(lambda: conn, sock)
    if hand_back:
        if not conn.reads_nothing:
            # it read before it could pause (a FIN, or more bytes than the
            # mark): it serves what is complete of them, reads no more, and
            # closes, since the parent cannot know where the stream stands
            read_anyway.append(True)
            conn.reads_nothing = True
        conn.pause_reading()
        conn.deadline = 0.0
        _watch_for_eof(conn, shut_fd)

    def stopping() -> None:
        state.shutting_down = True
        if conn.reads_nothing and conn.cycle is None and not conn.pipeline:
            # answered, about to hand the connection back: the parent treats
            # it as every idle one in a stop (closed once quiet for
            # IDLE_GRACE), so a request already on its way is still answered
            return
        conn.shutdown()  # what is answered from now on says "connection: close"

    loop.add_signal_handler(STOPPING, stopping)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (STOPPING,))
    if not conn.reads_nothing:  # a WebSocket
        sweep_from_now()
    run_cycle(cycle)
    keep_alive = await finished
    if keep_alive:
        # every response byte must leave this process before it exits
        transport.set_write_buffer_limits(0)  # type: ignore[attr-defined]
        await conn.drain()
        keep_alive = not transport.is_closing()  # else dropped by SEND_TIMEOUT
    if state.tasks:
        # the app may go on after its response (background tasks)
        await asyncio.wait(list(state.tasks))
    for task in sweeping:
        task.cancel()
    return keep_alive


def _watch_for_eof(conn: HTTPProtocol, fd: int) -> None:
    """Reading stays off, but a client that leaves is still heard (``http.disconnect``).

    The socket is polled through a duplicate descriptor and peeked at, never
    read: its FIN (or a reset) is the client's end, as a read would have
    found it; a byte of a later request ends the watch (it is the parent's).
    """
    peek = socket.socket(fileno=os.dup(fd))
    peek.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    loop = asyncio.get_running_loop()
    watched = peek.fileno()

    def readable() -> None:
        loop.remove_reader(watched)
        if not conn.reads_nothing or conn._closing:
            return
        try:
            gone = not peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            loop.add_reader(watched, readable)  # spurious
            return
        except OSError:
            gone = True
        if gone and not conn.eof_received() and conn.transport is not None:
            conn.transport.close()

    loop.add_reader(watched, readable)  # (``readable`` keeps ``peek``)


class _ChildStalls(Stalls):
    """A child's stalls: the first write that pauses starts the child's sweep."""

    __slots__ = ("_first",)

    def __init__(self, timeout: float, first: Callable[[], None]) -> None:
        super().__init__(timeout)
        self._first = first

    def paused(self, conn: HTTPProtocol, now: float) -> None:
        super().paused(conn, now)
        if self.timeout:
            self._first()


async def _sweep(state: ServerState) -> None:
    interval = state.sweep_interval()
    while True:
        await asyncio.sleep(interval)
        state.tick()
        state.sweep()


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
