"""The fork model's parent: its children's deadlines and the graceful stop.

Mixed into ``ForkServer``:

- every CHECK_PROCESS_INTERVAL, children running longer than
  REQUEST_TIMEOUT are killed (WebSockets aside; their relay answers 504);
- when a stop begins, every upload the parent is still reading is answered
  ``503`` with ``Connection: close`` and ``Retry-After`` at once: no app has
  run for it, and waiting out GRACEFUL_TIMEOUT for a body that then would
  be dropped unanswered helps no one. The connections are the parent's, so
  the core's graceful stop (``Connection: close``, WebSockets closed with
  1001 when time is up) covers the rest;
- then every child left is killed, and the zygote told to exit once it has
  reported them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import TYPE_CHECKING, Any

from ..server.gate import UNAVAILABLE_HEADERS

if TYPE_CHECKING:
    from ..asgi.cycle import HTTPCycle
    from ..config import Config
    from .zygote import ZygoteLink

__all__ = ["ForkStops", "kill"]

_STOPPING = b"Service Unavailable: the server is stopping, retry shortly\n"
_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


class ForkStops:
    if TYPE_CHECKING:  # ForkServer's, used here
        children: dict[int, Any]
        spawning: dict[int, Any]
        stopping: bool
        buffering: set[HTTPCycle]
        config: Config
        zygote: ZygoteLink | None
        retired: set[ZygoteLink]

        def unlist_listeners(self) -> None: ...

        def kill_child(self, child: Any) -> None: ...

        def _fork_waiting(self) -> None: ...

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
        for child in [*self.children.values(), *self.spawning.values()]:
            if not child.timed_out and not child.exempt and now - child.started > timeout:
                child.timed_out = True
                if child.pid:
                    self.kill_child(child)
                elif not child.link.exited.done():
                    # not forked yet (the zygote is behind): answered now, and
                    # killed as soon as the zygote says it forked it
                    child.link.exited.set_result((504, "Gateway Timeout"))

    async def main_loop(self) -> None:
        sweep = asyncio.get_running_loop().create_task(self.check_children())
        try:
            await super().main_loop()  # type: ignore[misc]
        finally:
            sweep.cancel()

    async def shutdown(self) -> None:
        self.unlist_listeners()
        for cycle in list(self.buffering):
            _refuse_upload(cycle)
        await super().shutdown()  # type: ignore[misc]
        self.stopping = True
        self._fork_waiting()  # (what still waits is answered 503)
        for child in list(self.children.values()):
            self.kill_child(child)
        deadline = time.monotonic() + 5
        while (self.children or self.spawning) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        zygotes = [*self.retired, *([self.zygote] if self.zygote is not None else [])]
        for zygote in zygotes:
            zygote.retire()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(z.gone for z in zygotes)), 5)


def _refuse_upload(cycle: HTTPCycle) -> None:
    """A stop began while the parent reads ``cycle``'s body: 503 now, and a lingering close."""
    if cycle.started or cycle.done:
        return
    cycle.response.keep_alive = False
    cycle.answer(503, [_PLAIN, *UNAVAILABLE_HEADERS], _STOPPING)
    cycle.disconnect()  # the spool is dropped (fork_intake's ``done``)


def kill(pidfd: int) -> None:
    """SIGKILL to the process of ``pidfd`` (nothing if it has exited)."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
