"""The admin socket's bearer token: the configured one, or one generated at start.

``ADMIN_TOKEN`` (``--admin-token``, ``QACTUAR_ADMIN_TOKEN``) when set; else
``secrets.token_urlsafe(32)``, written to ``ADMIN_TOKEN_FILE`` or to
``default_token_path`` (which the CLI client reads too): the directory is
made 0700, the file is created 0600 under a temporary name with ``O_EXCL``
and renamed into place, so it is never readable by another user, not even
for a moment, nor seen half-written. The path is logged, the token never.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass

from ..config import Config, ConfigError

__all__ = ["AdminToken", "admin_token", "default_token_path", "write_token_file"]

logger = logging.getLogger("qt_server")


def default_token_path(port_or_uds: int | str) -> str:
    """Where a generated token is written when ADMIN_TOKEN_FILE is empty.

    ``$XDG_RUNTIME_DIR/qactuar/``, else ``~/.cache/qactuar/``; the file is
    ``admin-<port>.token`` for a TCP admin socket, ``admin-<name>-<hash>.token``
    for ADMIN_UDS (the socket file's name and a hash of its absolute path).
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = os.path.join(runtime, "qactuar") if runtime else os.path.join(
        os.path.expanduser("~"), ".cache", "qactuar")
    if isinstance(port_or_uds, int):
        name = f"admin-{port_or_uds}.token"
    else:
        path = os.path.abspath(port_or_uds)
        digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(path))
        name = f"admin-{stem or 'uds'}-{digest}.token"
    return os.path.join(base, name)


def write_token_file(path: str, token: str) -> None:
    """Write ``token`` to ``path``, mode 0600, atomically (OSError if it cannot)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.lexists(directory):  # (a file there: open() says "Not a directory")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # makedirs' mode is subject to the umask
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token + "\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@dataclass
class AdminToken:
    """The token in force and, when generated, the file it was written to."""

    value: str
    path: str = ""

    def remove(self) -> None:
        """At stop: remove the file written at start, if it still holds this token."""
        if not self.path:
            return
        with contextlib.suppress(OSError):
            with open(self.path, encoding="ascii") as fh:
                if fh.read().strip() != self.value:
                    return  # another server's now
            os.unlink(self.path)


def admin_token(config: Config, port_or_uds: int | str) -> AdminToken:
    """The configured token, or a new one written to its file (ConfigError if it cannot be)."""
    if config.ADMIN_TOKEN:
        return AdminToken(config.ADMIN_TOKEN)
    path = config.ADMIN_TOKEN_FILE or default_token_path(port_or_uds)
    token = secrets.token_urlsafe(32)
    try:
        write_token_file(path, token)
    except OSError as exc:
        key = "ADMIN_TOKEN_FILE"
        raise ConfigError(key, config.ADMIN_TOKEN_FILE, config.source_of(key),
                          f"cannot write the admin token to {path}: {exc.strerror or exc}"
                          ) from None
    logger.info("Admin token written to %s", path)
    return AdminToken(token, path)
