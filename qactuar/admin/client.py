"""A client of the admin socket, for ``qactuar admin ...`` (the commands: ``admin/commands.py``).

Standard library only (``http.client``; a small subclass speaks HTTP over a
Unix socket), so the command needs nothing qactuar does not already depend on.
Where to connect and the token come from the same settings as the server's:
ADMIN_HOST, ADMIN_PORT, ADMIN_UDS (the config file of --config or
QACTUAR_CONFIG, never one found in the current directory, ``QACTUAR_<KEY>``,
then the options; a host that is not loopback only from --host), the token
from ``--token``, else ADMIN_TOKEN (``QACTUAR_ADMIN_TOKEN``), else the token
file the server wrote.

Every failure is an ``AdminClientError``: one line for the user and the exit
code (``EXIT_*``) the command ends with.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any

from ..config import Config
from .token import default_token_path

__all__ = [
    "EXIT_REFUSED", "EXIT_UNAUTHORIZED", "EXIT_UNREACHABLE", "EXIT_USAGE", "AdminClient",
    "AdminClientError", "Target", "is_loopback", "resolve_token",
]

#: The server answered with an error (400, 404, 409, 500...), or with something not JSON.
EXIT_REFUSED = 1
#: A bad option or a config that does not load (as for ``qactuar`` itself).
EXIT_USAGE = 2
#: Nothing answers at the admin socket's address, or the connection broke before an answer.
EXIT_UNREACHABLE = 3
#: No token to send, or the server refused it (401).
EXIT_UNAUTHORIZED = 4


class AdminClientError(Exception):
    """What went wrong, in one line, and the exit code for it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); a name is not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(config: Config, given: str | None) -> str:
    """--token, else ADMIN_TOKEN (config file or QACTUAR_ADMIN_TOKEN), else the token file."""
    if given:
        return given
    if config.ADMIN_TOKEN:
        return config.ADMIN_TOKEN
    path = config.ADMIN_TOKEN_FILE or default_token_path(
        config.ADMIN_UDS or config.ADMIN_PORT)
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except FileNotFoundError:
        raise AdminClientError(
            f"no admin token: pass --token or set QACTUAR_ADMIN_TOKEN (the token file {path} "
            "does not exist: the server writes it when it generates a token)",
            EXIT_UNAUTHORIZED) from None
    except OSError as exc:
        raise AdminClientError(f"cannot read the admin token file {path}: {exc.strerror}",
                               EXIT_UNAUTHORIZED) from None
    if not token:
        raise AdminClientError(f"the admin token file {path} is empty", EXIT_UNAUTHORIZED)
    return token


@dataclass(frozen=True)
class Target:
    """Where the admin socket listens: a Unix socket path, else host and port."""

    host: str
    port: int
    uds: str = ""

    @classmethod
    def from_config(cls, config: Config) -> Target:
        if not config.ADMIN_UDS and config.ADMIN_PORT == 0:
            raise AdminClientError(
                "ADMIN_PORT is 0 (a free port picked at start): pass the port the server "
                "logged with --port", EXIT_USAGE)
        return cls(config.ADMIN_HOST, config.ADMIN_PORT, config.ADMIN_UDS)

    def __str__(self) -> str:
        if self.uds:
            return f"unix:{self.uds}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket; the Host header says ``localhost``."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """One request per connection to the admin socket, with the bearer token."""

    def __init__(self, target: Target, token: str, timeout: float = 30.0) -> None:
        self.target = target
        self.token = token
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.target.uds:
            return _UnixHTTPConnection(self.target.uds, self.timeout)
        return http.client.HTTPConnection(self.target.host, self.target.port,
                                          timeout=self.timeout)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The server's JSON answer (None for an empty body); AdminClientError otherwise."""
        conn = self._connection()
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise AdminClientError(
                    f"cannot reach the admin socket at {self.target}: {_why(exc)} "
                    "(is the server running with --admin?)", EXIT_UNREACHABLE) from None
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise AdminClientError(
                    f"the admin socket at {self.target} did not answer {method} {path}: "
                    f"{_why(exc)}", EXIT_UNREACHABLE) from None
        finally:
            conn.close()
        return self._answer(method, path, response.status, data)

    def _answer(self, method: str, path: str, status: int, data: bytes) -> Any:
        try:
            parsed = json.loads(data) if data.strip() else None
        except ValueError:
            parsed = None
            if status < 400:
                raise AdminClientError(
                    f"{method} {path}: the admin socket at {self.target} answered {status} "
                    "with something other than JSON", EXIT_REFUSED) from None
        if status == 401:
            raise AdminClientError(
                f"the admin socket at {self.target} refused the token (401 "
                f"{_reason(parsed, data)}): check --token, QACTUAR_ADMIN_TOKEN or the token file",
                EXIT_UNAUTHORIZED)
        if status >= 400:
            raise AdminClientError(f"{method} {path}: {status} {_reason(parsed, data)}",
                                   EXIT_REFUSED)
        return parsed


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "it closed the connection without an answer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _reason(parsed: Any, data: bytes) -> str:
    """The server's reason: {"error": ...} (or reason/detail/message), else its text, one line."""
    if isinstance(parsed, dict):
        for key in ("error", "reason", "detail", "message"):
            if parsed.get(key) is not None:
                value = parsed[key]
                text = value if isinstance(value, str) else json.dumps(value)
                break
        else:
            text = json.dumps(parsed)
    else:
        text = data.decode("utf-8", "replace")
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."
