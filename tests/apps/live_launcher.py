"""``python -m live_launcher <qactuar args>``: qactuar as the CLI starts it, with
shorter live-change timeouts for the tests of a mount that hangs.

``LIVE_IMPORT_TIMEOUT`` and ``LIVE_STARTUP_TIMEOUT`` (seconds, in the
environment) replace ``IMPORT_TIMEOUT`` and ``STARTUP_TIMEOUT`` of
qactuar.admin.live; nothing else of the server is changed.
"""

from __future__ import annotations

import os
import sys

from qactuar.admin import live
from qactuar.cli import main

if __name__ == "__main__":
    live.IMPORT_TIMEOUT = float(os.environ.get("LIVE_IMPORT_TIMEOUT", live.IMPORT_TIMEOUT))
    live.STARTUP_TIMEOUT = float(os.environ.get("LIVE_STARTUP_TIMEOUT", live.STARTUP_TIMEOUT))
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
