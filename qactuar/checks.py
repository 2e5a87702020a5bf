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
    """Most WebSocket children at once (fork model): MAX_WEBSOCKETS, else half the children."""
    return config.MAX_WEBSOCKETS or max(1, config.MAX_PROCESSES // 2)


def check_config(config: Config) -> None:
    """ConfigError for a combination of settings the server cannot serve with."""
    # the certificate files are loaded now, so that a bad file is one line,
    # not a traceback in every worker
    server_tls(config)
    if config.MAX_WEBSOCKETS > config.MAX_PROCESSES:
        raise ConfigError(
            "MAX_WEBSOCKETS",
            config.MAX_WEBSOCKETS,
            config.source_of("MAX_WEBSOCKETS"),
            f"must not exceed MAX_PROCESSES ({config.MAX_PROCESSES}): WebSocket children "
            "would take the slots plain requests need",
        )

