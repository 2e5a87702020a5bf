"""The server process a reload supervisor starts: ``python -m qactuar.supervisors.child``.

argv: the descriptor of a pipe carrying the pickled (config, app target),
the descriptor on which to say "the code imports" (one byte), and the
supervisor's PID. The config already names the supervisor's listening
sockets in ``FD`` (passed with ``pass_fds``). A fresh interpreter, so every
start imports the code as it is now.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import sys

from ..config import Config
from ..importer import AppImportError, build_app
from ..logs import setup_logging
from ..main import serve

logger = logging.getLogger("qt_server")

_PR_SET_PDEATHSIG = 1


def _die_with_supervisor(supervisor: int) -> None:
    """SIGTERM this server if the supervisor dies (even by SIGKILL): no orphans."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux
    if os.getppid() != supervisor:
        os._exit(0)  # it died before the line above


def main(argv: list[str]) -> int:
    config_fd, ready_fd, supervisor = (int(arg) for arg in argv)
    _die_with_supervisor(supervisor)
    with os.fdopen(config_fd, "rb") as pipe:
        config, target = pickle.load(pipe)
    assert isinstance(config, Config)
    # the supervisor checked this config, logging included
    setup_logging(config.LOGS, config.LOG_LEVEL, config.ACCESS_LOG)
    try:
        # Import first, so that code that does not import (a syntax error
        # mid-edit) is told apart from a server that fails later.
        app = build_app(config.APPS, target, config.LIFESPAN, config.FACTORY, config.APP_DIR)
    except AppImportError as exc:
        logger.error("Cannot load app: %s", exc)
        return 2
    config.FACTORY = False  # ``app`` is what the factory made: serve() must not call it
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    # the app itself: in prefork the master holds it (as PRELOAD does) and
    # every worker of this fresh process has the code as it is now
    return serve(config, app)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
