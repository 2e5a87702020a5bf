"""What one setting's value must be: the checks ``Config`` runs as each value lands.

Each check takes the value (already of the right JSON type) and returns
None, or the reason it cannot be used, which ``ConfigError`` shows after
the key, the value and where it came from. Checks that span several
settings are in ``checks.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from .addresses import parse_address
from .proxy.trust import check_entries

__all__ = [
    "apps_table",
    "at_least",
    "bind_addresses",
    "check_entries",
    "descriptors",
    "directory",
    "file_mode",
    "header_items",
    "health_path",
    "logging_dict",
    "one_of",
    "parse_header",
    "port_number",
    "root_path",
]


def one_of(*options: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in options:
            return "must be one of " + ", ".join(repr(o) for o in options)
        return None

    return check


def at_least(low: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return f"must be at least {low}" if value < low else None

    return check


def port_number(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535"


def root_path(value: Any) -> str | None:
    if value and not value.startswith("/"):
        return "must be empty or start with '/'"
    return None


def logging_dict(value: Any) -> str | None:
    if value.get("version") != 1:
        return "a logging.config.dictConfig dictionary needs \"version\": 1"
    return None


def apps_table(value: Any) -> str | None:
    seen: dict[str, str] = {}
    for route, target in value.items():
        if not isinstance(route, str) or not route.startswith("/"):
            return f"route {route!r} must be a string starting with '/'"
        if not isinstance(target, str) or ":" not in target:
            return f"app for route {route!r} must be a 'module:attribute' string"
        same = seen.setdefault(route.rstrip("/"), route)
        if same != route:
            return f"routes {same!r} and {route!r} are the same route"
    return None


#: RFC 9110 §5.6.2 token (a header name).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Fields the server frames or writes itself: a default for them would break it.
_SERVER_FIELDS = (
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "date", "trailer"
)


def parse_header(item: str) -> tuple[str, str] | str:
    """``"Name: value"`` as (name, value), or why it cannot be a response header."""
    name, sep, value = item.partition(":")
    value = value.strip(" \t")
    if not sep:
        # the environment splits a list at commas, which header values may hold
        return f"{item!r} is not NAME:VALUE (in QACTUAR_HEADERS, a value with a comma " \
            "needs the JSON array form)"
    if not _TOKEN.fullmatch(name):
        return f"{name!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
    if any(ord(c) < 32 and c != "\t" or c == "\x7f" for c in value):
        return f"the value of {name!r} holds a control character (CR, LF, ...)"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"the value of {name!r} is not Latin-1 text"
    if name.lower() in _SERVER_FIELDS:
        return f"{name!r} is written by the server itself"
    return name, value


def header_items(value: Any) -> str | None:
    for item in value:
        parsed = parse_header(item)
        if isinstance(parsed, str):
            return parsed
    return None


def health_path(value: Any) -> str | None:
    if value and (not value.startswith("/") or "?" in value or " " in value):
        return "must be empty (off) or a path starting with '/', without a query"
    return None


def directory(value: Any) -> str | None:
    if value and not os.path.isdir(value):
        return "not a directory"
    return None


def bind_addresses(value: Any) -> str | None:
    for text in value:
        try:
            parse_address(text)
        except ValueError as exc:
            return f"{text!r}: {exc}"
    return None


def descriptors(value: Any) -> str | None:
    return "descriptor numbers are 0 or more" if any(fd < 0 for fd in value) else None


def file_mode(value: Any) -> str | None:
    if value and (not all(c in "01234567" for c in value) or int(value, 8) > 0o7777):
        return "must be an octal file mode such as \"0660\" (or empty)"
    return None
