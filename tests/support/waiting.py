"""The one poll helper: ``wait_until(predicate, timeout=..., what=...)``.

Polls a cheap predicate (a file exists, a log line arrived, a child exited)
every few milliseconds, bounded in time and in count, and fails with an
AssertionError that says what was awaited. Use it only for state that has
no event to block on (a socket read or ``proc.wait`` already has one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Generous: a loaded 2-core machine starts a Python process in seconds.
DEFAULT_TIMEOUT = 15.0


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, *,
               what: str, interval: float = 0.01) -> T:
    """The first truthy value ``predicate()`` returns; AssertionError naming ``what`` after
    ``timeout`` seconds. The predicate is tried once more at the deadline."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) * 4 + 10):
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    value = predicate()
    if value:
        return value
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
