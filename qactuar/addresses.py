"""The text forms of a listening address (``BIND`` values), parsed without I/O.

Kept apart from ``server/sockets.py`` so that ``config.py`` can check a
``BIND`` value when it lands (a typo is a start-up ConfigError, not a bind
error later) without importing the server.

    127.0.0.1:8000     [::1]:8000     localhost:8000     :8000 (every interface)
    unix:/run/app.sock                fd://3 (an inherited listening socket)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Address", "parse_address"]


@dataclass(frozen=True, slots=True)
class Address:
    """One place to listen: ``kind`` is "tcp" (host, port), "unix" (path) or "fd"."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """``text`` as an Address; ValueError says what is wrong with it."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise ValueError("unix: needs a path, e.g. unix:/run/qactuar.sock")
        return Address("unix", path=path)
    if text.startswith("fd://"):
        number = text[len("fd://") :]
        if not number.isdigit():
            raise ValueError("fd:// needs a descriptor number, e.g. fd://3")
        return Address("fd", fd=int(number))
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("an IPv6 address needs a port after the brackets, e.g. [::1]:8000")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("expected host:port, [ipv6]:port, unix:PATH or fd://N")
        if ":" in host:
            raise ValueError("put an IPv6 address in brackets, e.g. [::1]:8000")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError("the port must be a number from 0 to 65535")
    return Address("tcp", host=host, port=int(port_text))
