"""What psutil says of the server's processes and of the machine.

psutil reads /proc: fast for one process, not for hundreds of fork children,
so every call here is made from a thread (``asyncio.to_thread``), never on
the serving loop. ``ProcessWatch`` keeps one ``psutil.Process`` per pid
(pruned to the pids it is asked about) so that ``cpu_percent`` measures
the time since the previous look; a pid that vanished (or was reused: psutil
checks the start time) is skipped.

psutil is imported at the first look, not at start: until someone reads the
figures the serving process (the fork parent above all, whose mapped pages
every fork copies) does not carry it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil  # type: ignore[import-untyped]

__all__ = ["Measure", "ProcessWatch", "system_figures"]


@dataclass
class Measure:
    pid: int
    cpu_percent: float
    cpu_seconds: float
    rss: int
    fds: int


class ProcessWatch:
    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()

    def measure(self, pids: list[int]) -> dict[int, Measure]:
        """pid -> its figures, for the pids still alive (blocking: call from a thread)."""
        import psutil

        found: dict[int, Measure] = {}
        with self._lock:
            for gone in set(self._procs) - set(pids):
                del self._procs[gone]
            for pid in pids:
                try:
                    proc = self._procs.get(pid)
                    if proc is None or not proc.is_running():
                        proc = self._procs[pid] = psutil.Process(pid)
                    with proc.oneshot():
                        times = proc.cpu_times()
                        found[pid] = Measure(
                            pid=pid,
                            cpu_percent=proc.cpu_percent(None),
                            cpu_seconds=times.user + times.system,
                            rss=proc.memory_info().rss,
                            fds=_fds(proc),
                        )
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    self._procs.pop(pid, None)
        return found


def _fds(proc: psutil.Process) -> int:
    import psutil

    try:
        return int(proc.num_fds())
    except (AttributeError, psutil.AccessDenied):  # no num_fds on Windows
        return 0


def system_figures() -> dict[str, Any]:
    """Load average, CPUs and memory of the machine (blocking: call from a thread)."""
    import psutil

    memory = psutil.virtual_memory()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "load_average": load,
        "cpus": os.cpu_count() or 1,
        "memory": {
            "total": memory.total,
            "available": memory.available,
            "used": memory.used,
            "percent": memory.percent,
        },
    }
