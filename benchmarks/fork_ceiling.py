"""The fork ceiling: how many fork + _exit + reap cycles per second this machine does.

A process with the same modules imported as the fork model's parent (qactuar,
uvloop, the benchmark app) forks, lets the child ``_exit(0)`` at once and
reaps it, as fast as it can, for ``seconds``. No server can fork a process per
request faster than this; the fork model's requests/s is compared with it.

    python benchmarks/fork_ceiling.py [seconds]   # prints forks/s
"""

from __future__ import annotations

import os
import sys
import time

import qactuar.models.fork  # noqa: F401  (what the fork model's parent imports)
from qactuar.importer import load_app

APP = load_app("apps:hello")  # the same app, loaded the same way as the server does


def ceiling(seconds: float) -> float:
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        count += 1
    return count / seconds


if __name__ == "__main__":
    print(f"{ceiling(float(sys.argv[1]) if len(sys.argv) > 1 else 5):.0f}")
