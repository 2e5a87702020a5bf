"""The prefork pool's bookkeeping: what the master knows of each worker, and
the rule that decides which workers to start and which to stop.

``plan()`` is the whole policy, with no processes in it. A worker that is
retiring (it reached ``MAX_REQUESTS``), stopping on its own, or outdated
(started before the last SIGHUP) no longer counts, so a replacement starts;
it is sent SIGTERM only once enough of the current workers serve, so the pool
never has fewer serving workers than it should while replacements start. A
replacement that cannot start therefore leaves the old worker serving.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .slot import WorkerSlot, WorkerState

if TYPE_CHECKING:
    from ..admin.figures import Totals

__all__ = ["Plan", "WorkerRecord", "plan"]

MAX_REQUESTS_REASON = "replaced: MAX_REQUESTS"


@dataclass(slots=True)
class WorkerRecord:
    """What the master knows of one worker; ``figures()`` is for the admin socket."""

    pid: int
    slot: WorkerSlot
    generation: int
    max_requests: int
    started: float  # monotonic
    ready: bool = False
    stop_sent: float = 0.0  # monotonic time of SIGTERM/SIGQUIT, 0: not sent
    killed: str = ""  # why the master sent SIGKILL
    #: REUSE_PORT: the socket it serves on, held by the master as well.
    lane: socket.socket | None = None
    #: The admin figures it published, as last read whole (a read that meets
    #: a write under way falls back to them: a counter never drops).
    last_figures: Totals | None = None

    @property
    def state(self) -> str:
        if self.killed:
            return "killed"
        if self.stop_sent:
            return "stopping"
        return WorkerState.NAMES[self.slot.state]

    @property
    def leaving(self) -> bool:
        """Told to stop, killed, or on its way out by itself."""
        if self.stop_sent or self.killed:
            return True
        return self.slot.state in (WorkerState.RETIRING, WorkerState.STOPPING)

    def figures(self, now: float) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "age": round(now - self.started, 3),
            "requests": self.slot.requests,
            "max_requests": self.max_requests,
            "state": self.state,
            "generation": self.generation,
        }


@dataclass(slots=True)
class Plan:
    """Workers to start, and workers to send SIGTERM with the reason to log."""

    start: int = 0
    stop: list[tuple[WorkerRecord, str]] = field(default_factory=list)


def plan(workers: list[WorkerRecord], generation: int, target: int) -> Plan:
    """What to do for ``target`` workers of ``generation`` to serve."""
    current = [w for w in workers if w.generation == generation and not w.leaving]
    result = Plan(start=max(0, target - len(current)))
    current_pids = {w.pid for w in current}
    # SIGTTOU: stop the surplus, those still booting first, then the oldest.
    surplus = len(current) - target
    if surplus > 0:
        current.sort(key=lambda w: (w.ready, w.started))
        result.stop += [(w, "fewer workers wanted") for w in current[:surplus]]
        current = current[surplus:]
    # Retiring and outdated workers go once enough of the current ones serve.
    # With REUSE_PORT, not while the current worker that took over their lane
    # is still starting (the lane's clients would wait for it). Those whose
    # lane is handed over go first: stopping one on a lane nobody took closes
    # that lane, unless a worker started in the same turn needs a lane and
    # no lane with a worker still serving is free (see ``Arbiter.maintain``).
    going = [w for w in workers if not (w.stop_sent or w.killed) and w.pid not in current_pids]
    result.stop += [(w, "outdated before it served") for w in going if not w.ready]
    going = [w for w in going if w.ready]
    serving = sum(1 for w in current if w.ready) + len(going)
    successor = {w.lane: w for w in current if w.lane is not None}

    def may_stop(w: WorkerRecord) -> bool:
        # one shared socket (lane None) or a lane nobody took: nothing waits
        return w.lane not in successor or successor[w.lane].ready

    def order(w: WorkerRecord) -> tuple[bool, float]:
        return (w.lane is not None and w.lane not in successor, w.started)

    stoppable = sorted(filter(may_stop, going), key=order)
    for worker in stoppable[: max(0, serving - target)]:
        retiring = worker.slot.state == WorkerState.RETIRING
        result.stop.append((worker, MAX_REQUESTS_REASON if retiring else "replaced: reload"))
    return result
