"""``python -m failing_fork <qactuar args>``: qactuar whose chosen fork() calls fail.

RLIMIT_NPROC cannot be lowered for root here, so a failing fork is made
in-process: the calls numbered in ``FAIL_FORKS`` (comma-separated, from 1)
raise EAGAIN as the kernel's fork would when out of processes.
"""

from __future__ import annotations

import os
import sys

from qactuar.cli import main

_real_fork = os.fork
_failing = {int(n) for n in os.environ.get("FAIL_FORKS", "").split(",") if n}
_calls = 0


def _fork() -> int:
    global _calls
    _calls += 1
    if _calls in _failing:
        raise BlockingIOError(11, "Resource temporarily unavailable")
    return _real_fork()


if __name__ == "__main__":
    os.fork = _fork
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
