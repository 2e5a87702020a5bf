"""``python -m low_fds <qactuar args>``: qactuar under a low descriptor limit.

``NOFILE`` is the soft RLIMIT_NOFILE the process (and every process it forks)
gets, as ``prlimit --nofile`` would set it; ``DROP_LOG_INTERVAL`` (seconds)
replaces accept.py's interval between two "dropped" lines, so that a test of
the rate limit need not wait ten seconds. ``FSIZE`` (optional): the largest
file it may write (RLIMIT_FSIZE, as a full disk would stop it; Python ignores
SIGXFSZ, so a write past it fails with EFBIG).
"""

from __future__ import annotations

import os
import resource

from qactuar.cli import main
from qactuar.server import accept

if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(os.environ["NOFILE"]), hard))
    if "FSIZE" in os.environ:
        size = int(os.environ["FSIZE"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    accept.DROP_LOG_INTERVAL = float(os.environ.get("DROP_LOG_INTERVAL", "10"))
    main()
