"""What SIGHUP reloads in the prefork master: the config, re-read as at start.

Kept apart from the arbiter's supervision loop: this is about which settings
may change while the sockets stay bound and what a bad file leaves in place,
not about processes. ``config_for_reload`` returns the config the new workers
start with, or None to keep the current one (the error is logged). It runs
start-up's cross-setting checks (``checks.check_config``), which load the TLS
files once: new workers read them as they start, so a replaced certificate
is served after SIGHUP.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import fields
from typing import Any

from ..checks import check_config
from ..config import Config, ConfigError, load_config
from ..logs import setup_logging

__all__ = ["config_for_reload", "reread_config"]

logger = logging.getLogger("qt_server")

#: Settings a reload cannot change: the sockets stay those bound at start.
FIXED_ON_RELOAD = (
    "MODEL", "HOST", "PORT", "UDS", "BIND", "FD", "UDS_MODE", "BACKLOG", "REUSE_PORT", "PRELOAD"
)


def reread_config(config: Config) -> Config:
    """The config as it would load now: the same file re-read, the same overrides."""
    fresh = load_config(config.file_path) if config.file_path else Config()
    by_source: dict[str, dict[str, Any]] = collections.defaultdict(dict)
    for f in fields(Config):
        source = config.source_of(f.name)
        if source not in ("defaults", config.file_path):
            by_source[source][f.name] = getattr(config, f.name)
    for source, values in by_source.items():
        fresh.update(values, source)
    return fresh


def config_for_reload(current: Config, preloaded: bool) -> Config | None:
    """Re-read ``current``'s sources; None (logged) if the new config cannot be used."""
    try:
        config = reread_config(current)
        changed = [key for key in FIXED_ON_RELOAD if getattr(config, key) != getattr(current, key)]
        wanted = {key: getattr(config, key) for key in changed}
        for key in changed:
            setattr(config, key, getattr(current, key))
        # what start-up refuses, with the settings the new workers will have;
        # the certificate files too: the new workers load them as they start
        check_config(config)
    except ConfigError as exc:
        logger.error("SIGHUP: %s; keeping the current config and workers", exc)
        return None
    for key, value in wanted.items():
        logger.warning("SIGHUP: %s changed to %r; it takes effect at the next start", key, value)
    if preloaded and config.APPS != current.APPS:
        logger.warning("SIGHUP: APPS changed; with PRELOAD on, a restart loads them")
    if (config.LOGS, config.LOG_LEVEL, config.ACCESS_LOG) != (
        current.LOGS,
        current.LOG_LEVEL,
        current.ACCESS_LOG,
    ):
        try:
            setup_logging(config.LOGS, config.LOG_LEVEL, config.ACCESS_LOG)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            logger.error("SIGHUP: logging set-up failed (%s); keeping the current config", exc)
            setup_logging(current.LOGS, current.LOG_LEVEL, current.ACCESS_LOG)
            return None
    return config
