"""Binding listening sockets from the config, with errors that name the address."""

from __future__ import annotations

import os
import socket
import stat

from ..config import Config

__all__ = ["BindError", "bind_socket"]


class BindError(OSError):
    """The configured address cannot be listened on."""


def bind_socket(config: Config) -> socket.socket:
    """A bound, listening, non-blocking socket for HOST/PORT or UDS."""
    if config.UDS:
        path = config.UDS
        if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket from an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise BindError(exc.errno, f"cannot listen on unix:{path}: {exc.strerror}") from None
    else:
        host, port = config.HOST, config.PORT
        try:
            infos = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise BindError(0, f"cannot resolve HOST {host!r}: {exc.strerror}") from None
        # prefer IPv4 so that 'localhost' answers on 127.0.0.1
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise BindError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(config.BACKLOG)
    sock.setblocking(False)
    return sock
