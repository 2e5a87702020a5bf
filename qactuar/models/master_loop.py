"""The prefork master's event loop: its wake pipe, and what it serves beside supervising.

The master's loop (``Arbiter.supervise``) wakes on a pipe: the signal
wake-up descriptor (``signal.set_wakeup_fd``) and the workers (ready, or
wanting a replacement) write to it; the running loop reads it
(``add_reader``) and ``sleep`` awaits it. A ``Companion`` (the admin socket)
is served on the same loop.
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import Protocol

__all__ = ["Companion", "WakePipe"]


class Companion(Protocol):
    """What the master serves beside supervising, on its loop (the admin socket)."""

    async def start(self) -> None:
        """Begin serving (on the running loop), before the first worker starts."""
        ...

    async def stop(self, now: bool) -> None:
        """Stop serving, once every worker is gone; ``now``: without waiting on clients."""
        ...

    def in_child(self) -> None:
        """In a new worker, first thing: close every descriptor of the companion's."""
        ...


class WakePipe:
    """Mixed into ``Arbiter``: the wake pipe, read by the running loop."""

    signals: collections.deque[int]

    def init_wake_pipe(self) -> None:
        self._wake_r, self._wake_w = os.pipe()  # close-on-exec already
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        #: Set when the wake pipe was read since the last ``sleep``; None
        #: until the pipe is watched by a running loop (``_watch_wake_pipe``).
        self._woken: asyncio.Event | None = None
        self._watching: asyncio.AbstractEventLoop | None = None

    def _watch_wake_pipe(self) -> None:
        """Read the wake pipe from the running loop (once per loop)."""
        loop = asyncio.get_running_loop()
        if self._watching is loop:
            return
        self._woken = asyncio.Event()
        loop.add_reader(self._wake_r, self._drain_wake_pipe)
        self._watching = loop

    def _unwatch_wake_pipe(self) -> None:
        if self._watching is not None and not self._watching.is_closed():
            self._watching.remove_reader(self._wake_r)
        self._watching = None

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        if self._woken is not None:
            self._woken.set()

    async def sleep(self, timeout: float) -> None:
        """Wait for a signal, a worker's message or ``timeout``."""
        self._watch_wake_pipe()
        woken = self._woken
        assert woken is not None
        if self.signals:
            return
        if not woken.is_set():
            try:
                await asyncio.wait_for(woken.wait(), max(0.0, timeout))
            except TimeoutError:
                pass
        woken.clear()
