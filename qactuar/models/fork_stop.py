"""The fork model's parent: its children's deadlines and the graceful stop.

Mixed into ``ForkServer``:

- every CHECK_PROCESS_INTERVAL, children running longer than
  REQUEST_TIMEOUT are killed (WebSockets aside; ``_settle`` answers 504);
- when a stop begins, every child serving HTTP is told (``STOPPING``: it
  answers ``Connection: close`` from then on), and every upload the parent
  is still reading is answered ``503`` with ``Connection: close`` and
  ``Retry-After`` at once: no app has run for it, and waiting out
  GRACEFUL_TIMEOUT for a body that then would be dropped unanswered helps
  no one;
- when graceful time is up, children holding a WebSocket are asked to close
  it with 1001 (``GOING_AWAY``), then every child left is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ..server.gate import UNAVAILABLE_HEADERS
from .fork_child import GOING_AWAY, STOPPING

if TYPE_CHECKING:
    from ..asgi.cycle import HTTPCycle
    from ..config import Config

__all__ = ["ForkStops", "kill"]

_STOPPING = b"Service Unavailable: the server is stopping, retry shortly\n"
_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


class ForkStops:
    if TYPE_CHECKING:  # ForkServer's, used here
        children: dict[int, Any]
        buffering: set[HTTPCycle]
        config: Config

        def unlist_listeners(self) -> None: ...

    async def check_children(self) -> None:
        """Sweep every CHECK_PROCESS_INTERVAL: kill children past REQUEST_TIMEOUT
        (both read every turn: the admin socket may change them)."""
        while True:
            await asyncio.sleep(self.config.CHECK_PROCESS_INTERVAL)
            self.kill_overdue(time.monotonic())

    def kill_overdue(self, now: float) -> None:
        """Kill every child (WebSockets aside) running longer than REQUEST_TIMEOUT at ``now``."""
        timeout = self.config.REQUEST_TIMEOUT
        if not timeout:
            return
        for child in list(self.children.values()):
            if not child.timed_out and not child.exempt and now - child.started > timeout:
                child.timed_out = True
                kill(child.pid)

    async def main_loop(self) -> None:
        sweep = asyncio.get_running_loop().create_task(self.check_children())
        try:
            await super().main_loop()  # type: ignore[misc]
        finally:
            sweep.cancel()

    def going_away(self) -> int:
        """WebSockets live in children: ask each child to close its own with 1001."""
        told = 0
        for child in list(self.children.values()):
            # a relayed WebSocket's session is the parent's: the core closes it
            if child.exempt and child.link is None:
                try:
                    os.kill(child.pid, GOING_AWAY)
                    told += 1
                except ProcessLookupError:
                    pass
        return told + int(super().going_away())  # type: ignore[misc]

    async def shutdown(self) -> None:
        self.unlist_listeners()
        for child in list(self.children.values()):
            # a child owning its HTTP connection answers "connection: close"
            # from now on (a relayed request's connection is the core's here)
            if not child.exempt and child.link is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, STOPPING)
        for cycle in list(self.buffering):
            _refuse_upload(cycle)
        await super().shutdown()  # type: ignore[misc]
        for child in list(self.children.values()):
            kill(child.pid)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


def _refuse_upload(cycle: HTTPCycle) -> None:
    """A stop began while the parent reads ``cycle``'s body: 503 now, and a lingering close."""
    if cycle.started or cycle.done:
        return
    cycle.response.keep_alive = False
    cycle.answer(503, [_PLAIN, *UNAVAILABLE_HEADERS], _STOPPING)
    cycle.disconnect()  # the spool is dropped (fork_intake's ``done``)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
