"""``python -m own_group <qactuar args>``: qactuar as the leader of its own process group.

So that a test can signal the whole group (``os.killpg``), as Ctrl-C in a
terminal or a service manager does, without signalling itself.
"""

from __future__ import annotations

import os
import sys

from qactuar.cli import main

if __name__ == "__main__":
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
