"""Logging set-up: the seed's ``dictConfig`` dictionary and its four loggers.

``qt_server`` speaks for the parent or master process, ``qt_child`` for
children and workers, ``qt_access`` writes one line per request and
``qt_exception`` every exception an application raises, with its traceback.
``LOGS`` replaces the whole dictionary.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

__all__ = ["DEFAULT_LOGS", "LOGGER_NAMES", "printable", "setup_logging"]

LOGGER_NAMES = ("qt_server", "qt_child", "qt_access", "qt_exception")

DEFAULT_LOGS: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "standard": {"format": "{asctime} {levelname} {message}", "style": "{"},
        "access": {"format": "{asctime} ACCESS {message}", "style": "{"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "level": "DEBUG",
            "formatter": "standard",
            "stream": "ext://sys.stdout",
        },
        "access": {
            "class": "logging.StreamHandler",
            "level": "INFO",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
        "exception": {
            "class": "logging.StreamHandler",
            "level": "ERROR",
            "formatter": "standard",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "qt_server": {"handlers": ["console"], "level": "DEBUG"},
        "qt_child": {"handlers": ["console"], "level": "DEBUG"},
        "qt_access": {"handlers": ["access"], "level": "INFO"},
        "qt_exception": {"handlers": ["exception"], "level": "ERROR"},
    },
}


def printable(text: str) -> str:
    """``text`` safe to put in a log line: every character that is not printable
    (CR, LF, ESC and the other C0/C1 controls, DEL, U+2028...) escaped as
    Python writes it (``\\r``, ``\\x1b``, ``\\u2028``).

    Request data (a percent-decoded path, a reason a client's bytes chose)
    goes through here before it reaches a log: else a request could forge
    log lines or send terminal escapes to whoever reads them.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def setup_logging(logs: dict[str, Any], level: str = "", access_log: bool = True) -> None:
    """Apply ``logs`` with dictConfig; ``level`` overrides the qt_* loggers' levels."""
    logging.config.dictConfig(logs)
    # dictConfig disables every existing logger the dictionary does not name
    # (unless "disable_existing_loggers" is false). qactuar's loggers exist
    # before LOGS is applied only because qactuar is imported first: left
    # unnamed, they propagate to the root handlers instead of going silent.
    for name in LOGGER_NAMES:
        logging.getLogger(name).disabled = False
    if level:
        for name in LOGGER_NAMES:
            if name != "qt_exception" or logging.getLevelName(level.upper()) > logging.ERROR:
                logging.getLogger(name).setLevel(level.upper())
    if not access_log:
        logging.getLogger("qt_access").setLevel(logging.CRITICAL + 1)
