"""Accepting on a listening socket, with the descriptor limit in view.

The loops' own servers hide what happens at the descriptor limit: uvloop
(libuv) accepts and closes the connections it has no descriptor for, saying
nothing; asyncio logs one ERROR through the loop's exception handler and stops
accepting for a second. ``Listener`` accepts itself (the loop's reader on the
listening socket, ``connect_accepted_socket`` for each connection) so that
every model behaves alike and says so: at EMFILE/ENFILE it frees a descriptor
it keeps in reserve, accepts the waiting connections and closes them at once
(the client sees its connection closed, not a hang), and ``DropLog`` writes
one WARNING with the count, at most one line every ``DROP_LOG_INTERVAL``
seconds (drops meanwhile are counted and reported at the end of it). Out of
memory (ENOBUFS/ENOMEM), or without a reserve descriptor, it stops accepting
for ``RETRY_DELAY`` instead, as asyncio does, and says so too.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
from collections.abc import Callable

__all__ = ["DROP_LOG_INTERVAL", "DropLog", "Listener"]

logger = logging.getLogger("qt_server")

#: At most one "dropped" WARNING per this many seconds.
DROP_LOG_INTERVAL = 10.0
#: Seconds accepting stops when no connection can be dropped (asyncio's figure).
RETRY_DELAY = 1.0
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
_OUT_OF_MEMORY = (errno.ENOBUFS, errno.ENOMEM)


class DropLog:
    """Counts the connections dropped at the limit; logs them, rate-limited."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dropped = 0
        self.paused = 0
        self.reason = ""
        self._last = -DROP_LOG_INTERVAL  # loop time of the last line
        self._flush: asyncio.TimerHandle | None = None

    def count(self, dropped: int, paused: int, exc: OSError) -> None:
        """Called after an accept batch that met the limit."""
        self.dropped += dropped
        self.paused += paused
        self.reason = exc.strerror or str(exc)
        due = self._last + DROP_LOG_INTERVAL
        if self.loop.time() >= due:
            self.flush()
        elif self._flush is None:
            self._flush = self.loop.call_at(due, self.flush)

    def flush(self) -> None:
        self._flush = None
        if not (self.dropped or self.paused):
            return
        self._last = self.loop.time()
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        what = []
        if self.dropped:
            what.append(f"dropped {self.dropped} new connection(s)")
        if self.paused:
            what.append(f"stopped accepting {self.paused} time(s) for {RETRY_DELAY:g} s")
        logger.warning("%s (process %d, descriptor limit %d): %s (at most one such line "
                       "every %g s)", self.reason, os.getpid(), limit, ", ".join(what),
                       DROP_LOG_INTERVAL)
        self.dropped = self.paused = 0

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        self.flush()


class Listener:
    """Serves one listening socket with ``factory``; a stand-in for the loop's Server
    (``sockets``, ``close()``, ``wait_closed()``)."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol],
                 backlog: int, drops: DropLog) -> None:
        self.loop = drops.loop
        self.sock = sock
        self.factory = factory
        self.backlog = backlog
        self.drops = drops
        self.closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._reserve = _open_reserve()
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._ready)

    @property
    def sockets(self) -> list[socket.socket]:
        return [] if self.closed else [self.sock]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self._reserve >= 0:
            os.close(self._reserve)
            self._reserve = -1

    async def wait_closed(self) -> None:
        return None

    def _ready(self) -> None:
        for _ in range(self.backlog):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS or exc.errno in _OUT_OF_MEMORY:
                    self._at_the_limit(exc)
                    return
                raise  # the loop logs it and calls this again
            conn.setblocking(False)
            self.loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn)
        except OSError:
            conn.close()  # gone before it was set up

    def _at_the_limit(self, exc: OSError) -> None:
        dropped = self._drop_waiting() if exc.errno in _OUT_OF_FDS else -1
        if dropped > 0:
            self.drops.count(dropped, 0, exc)
        if dropped >= 0:
            return  # (none: another process took what was waiting)
        # no descriptor to spare: stop accepting for a while (else the
        # listening socket stays readable and the loop spins)
        self.drops.count(0, 1, exc)
        self.loop.remove_reader(self.sock.fileno())
        self._retry = self.loop.call_later(RETRY_DELAY, self._resume)

    def _drop_waiting(self) -> int:
        """Close the reserve, accept and close every waiting connection; -1: no reserve."""
        if self._reserve < 0:
            self._reserve = _open_reserve()
            return -1
        os.close(self._reserve)
        self._reserve = -1
        dropped = 0
        try:
            for _ in range(self.backlog):
                try:
                    conn, _ = self.sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionAbortedError:
                    continue
                except OSError:
                    break  # the freed descriptor was taken meanwhile
                conn.close()
                dropped += 1
        finally:
            self._reserve = _open_reserve()
        return dropped

    def _resume(self) -> None:
        self._retry = None
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._ready)


def _open_reserve() -> int:
    """A descriptor to give up at EMFILE; -1 if none can be had."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
