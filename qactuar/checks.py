"""Checks that span several settings: run at start-up and again on a prefork SIGHUP.

A single setting is checked as it lands in ``Config``; what depends on two
or more (or on files they name) is checked here, once, so that a reload
cannot accept what start-up refuses. ``check_config`` raises the one-line
``ConfigError`` either way.

Left to other places, with reason: LOGS is checked by setting logging up
(``main``; a reload sets it up too and keeps the old on failure); REUSE_PORT
against BIND/FD/UDS by the prefork master as it binds, and none of those
keys changes on a reload; FACTORY against APPS by the app import, which a
reload without PRELOAD repeats in new workers (a failure keeps the old ones).
"""

from __future__ import annotations

from .config import Config, ConfigError
from .server.tls import server_tls

__all__ = ["check_config", "websocket_cap"]


def websocket_cap(config: Config) -> int:
    """Most WebSocket children at once (fork model): MAX_WEBSOCKETS, else half the children.

    Never every child: one slot at least stays for plain requests, so with
    MAX_PROCESSES 1 every WebSocket is refused.
    """
    cap = config.MAX_WEBSOCKETS or max(1, config.MAX_PROCESSES // 2)
    return min(cap, config.MAX_PROCESSES - 1)


def check_config(config: Config) -> None:
    """ConfigError for a combination of settings the server cannot serve with."""
    # the certificate files are loaded now, so that a bad file is one line,
    # not a traceback in every worker
    server_tls(config)
    if config.MODEL == "fork" and config.FORK_AHEAD > config.MAX_PROCESSES:
        raise ConfigError(
            "FORK_AHEAD",
            config.FORK_AHEAD,
            config.source_of("FORK_AHEAD"),
            f"must be at most MAX_PROCESSES ({config.MAX_PROCESSES}): more children waiting "
            "than may ever run at once",
        )
    # (fork only: in async and prefork a WebSocket holds no process of its own)
    if config.MODEL == "fork" and config.MAX_WEBSOCKETS >= config.MAX_PROCESSES:
        raise ConfigError(
            "MAX_WEBSOCKETS",
            config.MAX_WEBSOCKETS,
            config.source_of("MAX_WEBSOCKETS"),
            f"must be below MAX_PROCESSES ({config.MAX_PROCESSES}): WebSocket children "
            "would take the slots plain requests need",
        )

