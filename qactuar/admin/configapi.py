"""The config in force, as the admin socket shows, checks, changes and saves it.

- ``masked``: every setting, a secret (any key naming TOKEN, PASSWORD,
  SECRET) shown as ``"********"`` when set.
- ``checked_changes``: a PATCH body checked exactly as at start-up: each
  key must be a setting (by its exact name), each value passes
  ``Config.update`` (type and per-setting check, the same code a file or
  the environment goes through) and the whole passes ``check_config`` (the
  cross-setting checks). The ``ADMIN_*`` settings are never changed through
  the admin socket itself (409): it does not lower its own guard.
- ``save_config``: the config in force written back to the JSON file it
  came from, atomically: a temporary file in the same directory (the old
  file's mode), fsync, the old file kept as ``<file>.bak`` (a hard link, so
  the file never goes missing), ``os.replace``, the directory fsynced.
  Written: the keys the file had (in its order, aliases and lower-case
  names under their setting's name), then every other key that differs
  from its default, sorted; a secret only if the file had it, and then the
  file's own value unless the one in force came from the file or through
  the admin socket (a token from the environment or the command line never
  reaches the file, even over the file's own token). ``load_config`` of the saved
  file, in the same environment, gives the config in force.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
from dataclasses import MISSING, fields
from typing import Any

from ..checks import check_config
from ..config import Config, ConfigError
from .live import SOURCE as LIVE_SOURCE
from .web import Refusal

__all__ = ["MASK", "checked_changes", "is_secret", "masked", "save_config", "shown"]

MASK = "********"
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY_PASSWORD")
#: Settings the admin socket never changes through itself.
GUARDED_PREFIX = "ADMIN_"
SOURCE = "PATCH /config"

_NAMES = tuple(f.name for f in fields(Config))
_ALIASES = {"ASYNCRONOUS_MODEL": "MODEL"}


#: Keys named like a secret that hold none (a path).
NOT_SECRET = frozenset({"ADMIN_TOKEN_FILE"})
#: Inside LOGS (handlers, formatters...), a key naming one of these is masked.
NESTED_SECRET_WORDS = ("PASSWORD", "PASSWD", "CREDENTIAL", "SECRET", "TOKEN")


def is_secret(key: str) -> bool:
    return key not in NOT_SECRET and any(word in key.upper() for word in SECRET_WORDS)


def shown(key: str, value: Any) -> Any:
    """``value`` as the API and logs show it: a secret that is set, masked; inside LOGS,
    every value under a key named like a credential (a handler's password, token...)."""
    if is_secret(key) and value:
        return MASK
    if key == "LOGS":
        return _masked_inside(value)
    return value


def _masked_inside(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if v and any(w in str(k).upper() for w in NESTED_SECRET_WORDS)
                else _masked_inside(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked_inside(v) for v in value]
    return value


def masked(config: Config) -> dict[str, Any]:
    return {name: shown(name, copy.deepcopy(getattr(config, name))) for name in _NAMES}


def defaults() -> dict[str, Any]:
    found = {}
    for f in fields(Config):
        found[f.name] = f.default_factory() if f.default_factory is not MISSING else f.default
    return found


def checked_changes(config: Config, body: dict[str, Any], live: frozenset[str]) -> dict[str, Any]:
    """The changes of a PATCH body, each value as ``Config`` holds it; else a Refusal.

    400: an unknown key, a value of the wrong type or that fails its check
    (the message names key, value and problem). 409: a key this model cannot
    change without a restart. Every 400 comes before any 409.
    """
    if not body:
        raise Refusal(400, "the body names no setting to change")
    trial = copy.deepcopy(config)
    for key, value in body.items():
        if key not in _NAMES:
            raise Refusal(400, f"unknown setting {key!r}", key=key)
        try:
            trial.update({key: value}, SOURCE)
        except ConfigError as exc:
            raise Refusal(400, _message(exc), key=key) from None
    try:
        check_config(trial)
    except ConfigError as exc:
        raise Refusal(400, _message(exc), key=exc.key) from None
    for key in body:
        if key.startswith(GUARDED_PREFIX):
            raise Refusal(409, f"{key} changes only with a restart: the admin socket does "
                          "not change its own settings", key=key)
        if key not in live:
            raise Refusal(409, f"{key} cannot change while the server runs: restart it to "
                          "change it", key=key)
    return {key: getattr(trial, key) for key in body}


def _message(exc: ConfigError) -> str:
    """A ConfigError's message, the value masked when the key is a secret."""
    if is_secret(exc.key) and exc.value:
        return f"config {exc.key}={MASK!r} (from {exc.source}): {exc.reason}"
    return str(exc)


def _file_settings(path: str) -> dict[str, Any]:
    """The settings the file names, in its order, under their setting's name, with the
    value the file gives (the first spelling of a key wins, as for the keys' order)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, Any] = {}
    for raw, value in data.items():
        name = str(raw).upper()
        name = _ALIASES.get(name, name)
        if name in _NAMES and name not in found:
            found[name] = value
    return found


def _written_here(config: Config, key: str) -> bool:
    """Whether the value in force came from the config file itself or through the admin
    socket (PATCH /config): the only values of a secret that save_config may write."""
    return config.source_of(key) in (config.file_path, SOURCE, LIVE_SOURCE)


def saved_settings(config: Config, path: str) -> dict[str, Any]:
    """What ``save_config`` writes (see the module's doc)."""
    in_file = _file_settings(path)
    base = defaults()
    out: dict[str, Any] = {}
    for key, value in in_file.items():
        if is_secret(key) and not _written_here(config, key):
            out[key] = value  # the file's own: never a secret from the environment
        else:
            out[key] = getattr(config, key)
    for key in sorted(_NAMES):
        if key in out or getattr(config, key) == base[key]:
            continue
        if is_secret(key):
            continue  # only where the file had it: never a token from the environment
        out[key] = getattr(config, key)
    return out


def save_config(config: Config) -> tuple[str, list[str]]:
    """Write the config in force to its file (atomically); (path, keys written).

    Blocking file work: run it in a thread.
    """
    path = config.file_path
    if not path:
        raise Refusal(409, "the config in force came from no file: start the server with "
                      "--config FILE (or QACTUAR_CONFIG) to save it")
    settings = saved_settings(config, path)
    text = json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o600
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                    suffix=".tmp")
    except OSError as exc:
        raise Refusal(500, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(path):
            _keep_backup(path)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise Refusal(500, f"cannot write {path}: {exc.strerror or exc}") from None
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some filesystems refuse a directory fsync: the rename is done anyway
    finally:
        os.close(dir_fd)
    return path, list(settings)


def _keep_backup(path: str) -> None:
    backup = path + ".bak"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(backup)
    try:
        os.link(path, backup)  # the file stays in place until os.replace swaps it
    except OSError:
        shutil.copy2(path, backup)
