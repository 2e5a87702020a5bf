"""``python -m failing_fork <qactuar args>``: qactuar whose chosen fork() calls fail.

RLIMIT_NPROC cannot be lowered for root here, so a failing fork is made
in-process: the calls numbered in ``FAIL_FORKS`` (comma-separated, from 1)
raise EAGAIN as the kernel's fork would when out of processes, and those in
``FAIL_PIDFDS`` of ``os.pidfd_open`` raise EMFILE (out of descriptors),
after ``FAIL_PIDFDS_DELAY`` seconds (the child runs meanwhile).

``TERM_IN_CHILD`` (numbers of fork calls, as above): that call's child sends
itself SIGTERM (or the signal named in ``TERM_SIGNAL``) the moment fork()
returns, as a stop signal sent to a process just forked would arrive, before
the child has put its own handlers in place.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from qactuar.cli import main

_real_fork, _real_pidfd_open = os.fork, os.pidfd_open
_failing = {int(n) for n in os.environ.get("FAIL_FORKS", "").split(",") if n}
_failing_pidfds = {int(n) for n in os.environ.get("FAIL_PIDFDS", "").split(",") if n}
_term_in_child = {int(n) for n in os.environ.get("TERM_IN_CHILD", "").split(",") if n}
_calls = {"fork": 0, "pidfd": 0}


def _fork() -> int:
    _calls["fork"] += 1
    if _calls["fork"] in _failing:
        raise BlockingIOError(11, "Resource temporarily unavailable")
    pid = _real_fork()
    if pid == 0 and _calls["fork"] in _term_in_child:
        os.kill(os.getpid(), getattr(signal, os.environ.get("TERM_SIGNAL", "SIGTERM")))
    return pid


def _pidfd_open(pid: int, flags: int = 0) -> int:
    _calls["pidfd"] += 1
    if _calls["pidfd"] in _failing_pidfds:
        time.sleep(float(os.environ.get("FAIL_PIDFDS_DELAY", "0")))
        raise OSError(24, "Too many open files")
    return _real_pidfd_open(pid, flags)


if __name__ == "__main__":
    os.fork = _fork
    os.pidfd_open = _pidfd_open
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
