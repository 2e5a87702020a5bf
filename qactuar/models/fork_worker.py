"""The fork model on every core: a fork-model parent as a prefork worker.

With ``MODEL = "fork"`` and ``WORKERS`` set, the prefork master
(``arbiter.py``) supervises ``WORKERS`` fork-model parents instead of async
workers: its lanes (REUSE_PORT), signals (SIGHUP, SIGTTIN/SIGTTOU, SIGTERM),
heartbeats (WORKER_TIMEOUT), recycling (MAX_REQUESTS) and reloads are the
same. Each parent accepts and parses on its own core and relays every
request to a fresh child of its own zygote (``fork.py``, ``zygote.py``), so
the fork model's guarantees hold per request whatever parent took it.

``ForkWorker`` is the two classes combined, not a copy of either: the
worker's steps (heartbeat, retirement, a careful drain) run around the
fork parent's (zygote, relay, children's deadlines) through ``super()``.
"""

from __future__ import annotations

import asyncio
import bisect

from ..asgi.types import ASGIApp
from .fork import ForkServer
from .worker import WorkerServer, WorkerSpec

__all__ = ["ForkWorker"]


class ForkWorker(WorkerServer, ForkServer):
    """A prefork worker whose requests each run in a fresh child."""

    def __init__(self, app: ASGIApp, spec: WorkerSpec) -> None:
        super().__init__(app, spec)
        # the master's wake-up pipe is the worker's, and the master's event
        # loop (its epoll instance, its self-pipe) nobody's here: no zygote
        # or child holds them
        for fd in (spec.wake_fd, *_loop_fds(spec.master_loop)):
            bisect.insort(self.child_closes, fd)

    async def shutdown(self) -> None:
        # the listeners close first thing (WorkerServer.shutdown): their numbers
        # leave ``child_closes`` before, or a zygote forked meanwhile would
        # close whatever reused them (its own control socket, say)
        self.unlist_listeners()
        await super().shutdown()


def _loop_fds(loop: asyncio.AbstractEventLoop | None) -> list[int]:
    """The descriptors of the master's loop (asyncio's: its selector, its self-pipe)."""
    if loop is None:
        return []
    found = []
    selector = getattr(loop, "_selector", None)
    if selector is not None:
        found.append(selector.fileno())
    for name in ("_ssock", "_csock"):
        sock = getattr(loop, name, None)
        if sock is not None and sock.fileno() >= 0:
            found.append(sock.fileno())
    return found
