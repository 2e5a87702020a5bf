"""What a prefork master and each of its workers share: a page of memory and a few codes.

``WorkerSlot`` is one page of anonymous shared memory per worker, mapped
before the fork: the worker writes its heartbeat, request count and state,
and the reason it could not start; the master reads them. With the admin
socket on, a figures block follows the page: the worker publishes its admin
figures there once per heartbeat and as it exits (``FiguresBlock``).
"""

from __future__ import annotations

import ctypes
import mmap
import signal

from ..admin.figures_shm import FiguresBlock

__all__ = [
    "BOOT_ERROR",
    "STACK_SIGNAL",
    "WorkerSlot",
    "WorkerState",
    "beat_interval",
]

#: Exit status of a worker that could not start (app import or lifespan
#: startup failed), as gunicorn's workers use.
BOOT_ERROR = 3
#: The master sends it before SIGKILL: the worker writes every thread's stack
#: to stderr (from C, so a blocked event loop does not stop it).
STACK_SIGNAL = signal.SIGUSR1


def beat_interval(worker_timeout: float) -> float:
    """Seconds between a worker's heartbeats."""
    return min(1.0, worker_timeout / 4) if worker_timeout else 1.0


class WorkerState:
    """The state byte of a slot."""

    BOOTING = 0
    READY = 1
    RETIRING = 2
    STOPPING = 3
    NAMES = ("booting", "ready", "retiring", "stopping")


class _Numbers(ctypes.Structure):
    _fields_ = [
        ("heartbeat", ctypes.c_double),
        ("requests", ctypes.c_uint64),
        ("state", ctypes.c_uint8),
        ("reason_length", ctypes.c_uint16),
    ]


class WorkerSlot:
    """A page of anonymous shared memory between the master and one worker.

    The numbers are aligned native words written and read whole (through
    ctypes), so the master never sees half of a heartbeat; the reason a
    worker could not start follows them as UTF-8 text.
    """

    SIZE = mmap.PAGESIZE
    _REASON_AT = 64
    #: Bytes of the figures block (about 800 routes' worth; pages never written
    #: take no memory).
    FIGURES_SIZE = 256 * 1024

    def __init__(self, figures: bool = False) -> None:
        size = self.SIZE + (self.FIGURES_SIZE if figures else 0)
        self.mem = mmap.mmap(-1, size)  # MAP_SHARED: the same pages for both processes
        self._numbers = _Numbers.from_buffer(self.mem)
        #: The worker's admin figures (ADMIN_ENABLED), else None.
        self.figures = FiguresBlock(self.mem, self.SIZE, self.FIGURES_SIZE) if figures else None

    @property
    def heartbeat(self) -> float:
        return float(self._numbers.heartbeat)

    @heartbeat.setter
    def heartbeat(self, value: float) -> None:
        self._numbers.heartbeat = value

    @property
    def requests(self) -> int:
        return int(self._numbers.requests)

    @requests.setter
    def requests(self, value: int) -> None:
        self._numbers.requests = value

    @property
    def state(self) -> int:
        return int(self._numbers.state)

    @state.setter
    def state(self, value: int) -> None:
        self._numbers.state = value

    @property
    def reason(self) -> str:
        start = self._REASON_AT
        return self.mem[start : start + self._numbers.reason_length].decode("utf-8", "replace")

    @reason.setter
    def reason(self, text: str) -> None:
        data = text.encode("utf-8", "replace")[: self.SIZE - self._REASON_AT]
        self.mem[self._REASON_AT : self._REASON_AT + len(data)] = data
        self._numbers.reason_length = len(data)

    def close(self) -> None:
        del self._numbers
        self.figures = None
        self.mem.close()
