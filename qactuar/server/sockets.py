"""The listening sockets a config asks for, with errors that name the address.

``bind_sockets(config)`` returns every socket to serve on: the ones systemd
passed (socket activation: ``LISTEN_FDS``/``LISTEN_PID``, picked up by
themselves), then those of ``BIND`` and ``FD``; only when there are none of
those, ``UDS`` or ``HOST``/``PORT``. An inherited socket is checked (a
listening stream socket) before it is used, and adopted once however many
times it is given; an error names the setting, its value and its source.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import logging
import os
import socket
import stat
from dataclasses import dataclass

from ..addresses import Address, parse_address
from ..config import Config

__all__ = ["BindError", "adopt_fd", "bind_address", "bind_sockets", "configured_addresses",
           "peer_gone",
           "describe", "remove_unix_socket", "remove_unix_sockets", "systemd_fds"]

logger = logging.getLogger("qt_server")

#: The first descriptor systemd passes (SD_LISTEN_FDS_START).
SD_LISTEN_FDS_START = 3
_SYSTEMD_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class BindError(OSError):
    """The configured address cannot be listened on."""


def configured_addresses(config: Config) -> list[Address]:
    """``BIND`` then ``FD`` as addresses (empty: HOST/PORT or UDS apply)."""
    addresses = [parse_address(text) for text in config.BIND]  # checked by Config
    return addresses + [Address("fd", fd=fd) for fd in config.FD]


def systemd_fds() -> list[tuple[int, str]]:
    """(descriptor, name) of each socket systemd activated this process with, read once.

    As ``sd_listen_fds(1)``: the variables are removed whatever they say, so
    that processes started later (a reload's server, an app's subprocess)
    never take them for their own. The name is the unit's
    ``FileDescriptorName=`` (LISTEN_FDNAMES), for the log.
    """
    count, pid = os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for name in _SYSTEMD_VARIABLES:
        os.environ.pop(name, None)
    if not count or not pid:
        return []
    if not pid.isdigit() or int(pid) != os.getpid():
        logger.warning("LISTEN_PID=%s is not this process (%d): ignoring LISTEN_FDS",
                       pid, os.getpid())
        return []
    if not count.isdigit():
        raise BindError(0, f"cannot use socket activation: LISTEN_FDS={count!r} is not a number")
    names += [""] * int(count)
    return [(SD_LISTEN_FDS_START + i, names[i]) for i in range(int(count))]


def bind_sockets(config: Config) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every configured address."""
    sockets: list[socket.socket] = []
    #: Each inherited descriptor is adopted once (systemd's fd 3 and --fd 3
    #: are one socket; two objects owning it would close it twice).
    adopted: dict[int, str] = {}
    try:
        for fd, name in systemd_fds():
            origin = f"LISTEN_FDS {name}" if name else "LISTEN_FDS"
            sockets.append(adopt_fd(fd, origin))
            adopted[fd] = origin
        given = [("BIND", text, parse_address(text)) for text in config.BIND]
        given += [("FD", str(fd), Address("fd", fd=fd)) for fd in config.FD]
        for key, text, address in given:
            if address.kind != "fd":
                sockets.append(bind_address(address, config))
                continue
            origin = f"{key}={text}"
            if address.fd in adopted:
                logger.info("Inherited socket %d (%s) is %s already: served once",
                            address.fd, origin, adopted[address.fd])
                continue
            sockets.append(adopt_fd(address.fd, origin, config.source_of(key)))
            adopted[address.fd] = origin
        if sockets:
            _warn_ignored(config, bool(adopted) and not config.BIND and not config.FD)
        else:
            if config.UDS:
                sockets.append(bind_address(Address("unix", path=config.UDS), config))
            else:
                sockets.append(bind_address(Address("tcp", config.HOST, config.PORT), config))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def _warn_ignored(config: Config, activated: bool) -> None:
    """HOST/PORT/UDS set (not defaults) but replaced by BIND, FD or systemd's sockets."""
    ignored = [key for key in ("HOST", "PORT", "UDS") if config.source_of(key) != "defaults"]
    if ignored:
        by = "systemd's sockets" if activated else " and ".join(
            key for key in ("BIND", "FD") if getattr(config, key)
        ) + " set"
        logger.warning("%s: %s ignored", by, "/".join(ignored))


def bind_address(address: Address, config: Config) -> socket.socket:
    """One listening socket for ``address`` (an fd is adopted, not bound)."""
    if address.kind == "fd":
        return adopt_fd(address.fd, f"fd://{address.fd}")
    sock = _bind_unix(address.path, config) if address.kind == "unix" else _bind_tcp(address)
    try:
        sock.listen(config.BACKLOG)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
    return sock


def adopt_fd(fd: int, origin: str, source: str = "") -> socket.socket:
    """The listening stream socket an inherited descriptor holds, or BindError.

    ``origin`` names it (``FD=3``, ``BIND=fd://3``, ``LISTEN_FDS web``) and
    ``source`` where that setting came from, as config errors say it.
    """
    where = f"{origin} (from {source})" if source else origin
    try:
        sock = socket.socket(fileno=fd)  # learns family and type from the fd
    except OSError as exc:
        what = "is not open" if exc.errno == 9 else f"is not a socket ({exc.strerror})"
        raise BindError(exc.errno, f"cannot serve on {where}: descriptor {fd} {what}") from None
    problem = ""
    if sock.type != socket.SOCK_STREAM:
        problem = "is not a stream (TCP or Unix stream) socket"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "is not listening (call listen() on it before passing it)"
    if problem:
        sock.detach()  # not ours to close
        raise BindError(0, f"cannot serve on {where}: descriptor {fd} {problem}")
    # inherited on purpose by this process, not to be passed on to the app's own children
    sock.set_inheritable(False)
    logger.info("Using inherited socket %d (%s)", fd, origin)
    return sock


def _bind_unix(path: str, config: Config) -> socket.socket:
    """A Unix socket bound at ``path``, never taken from a live server.

    bind() first; only if the path exists is it looked at: a socket nobody
    accepts on (a crash's leftover) is replaced, a socket something accepts
    on is EADDRINUSE (as a busy TCP port), anything else is refused.
    """
    where = f"unix:{path}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or path.startswith("\0"):
                raise
            _clear_stale(path, where)
            sock.bind(path)
        if not path.startswith("\0"):  # an abstract socket has no file
            info = os.stat(path)
            _owned[path] = _Owned(os.path.abspath(path), (info.st_dev, info.st_ino), os.getpid())
        if config.UDS_MODE:
            os.chmod(path, int(config.UDS_MODE, 8))
    except OSError as exc:
        sock.close()
        if isinstance(exc, BindError):
            raise
        raise BindError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from None
    return sock


def _clear_stale(path: str, where: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; else BindError."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return  # gone meanwhile
    if not stat.S_ISSOCK(mode):
        raise BindError(errno.EEXIST, f"cannot listen on {where}: the path exists and is "
                        "not a socket (refusing to replace it)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # stale: nothing accepts on it
    except BlockingIOError:  # EAGAIN: its backlog is full, so it is very much alive
        raise BindError(errno.EADDRINUSE, f"cannot listen on {where}: "
                        f"{os.strerror(errno.EADDRINUSE)}") from None
    except OSError as exc:
        raise BindError(exc.errno, f"cannot listen on {where}: cannot tell whether a server "
                        f"listens on it ({exc.strerror})") from None
    else:
        raise BindError(errno.EADDRINUSE, f"cannot listen on {where}: "
                        f"{os.strerror(errno.EADDRINUSE)}")
    finally:
        probe.close()
    logger.info("Replacing the stale socket %s (nothing listens on it)", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@dataclass(frozen=True, slots=True)
class _Owned:
    """A Unix socket file this process created: removed by it, and only if still the same."""

    path: str
    inode: tuple[int, int]  # st_dev, st_ino
    pid: int


#: The Unix socket files bound here, by the path given to bind().
_owned: dict[str, _Owned] = {}


def remove_unix_socket(path: str) -> None:
    """Unlink the socket file bound at ``path`` (once ours is closed), if this process
    created it and it is still that file: a fork child or a prefork worker leaves it,
    and so does a process whose file another server replaced meanwhile."""
    owned = _owned.get(path)
    if owned is None or owned.pid != os.getpid():
        return
    del _owned[path]
    try:
        info = os.lstat(owned.path)
        ours = stat.S_ISSOCK(info.st_mode) and (info.st_dev, info.st_ino) == owned.inode
        if not ours or _accepts(owned.path):
            # not ours: a new file (its inode may be our old number), or a
            # server that replaced ours, or one of our processes still listening
            return
        os.unlink(owned.path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("Cannot remove the socket file %s: %s", owned.path, exc.strerror)


def _accepts(path: str) -> bool:
    """Whether something listens on the Unix socket ``path`` (a connect succeeds)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # cannot tell (EAGAIN: a full backlog): leave the file
        return True


def remove_unix_sockets() -> None:
    """Every socket file this process created and still owns (at exit)."""
    for path in list(_owned):
        remove_unix_socket(path)


atexit.register(remove_unix_sockets)


def _bind_tcp(address: Address) -> socket.socket:
    family, kind, proto, sockaddr = resolve(address)
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        # [::]:8000 and 0.0.0.0:8000 may both be bound, as asyncio does
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
    return sock


def resolve(address: Address) -> tuple[int, int, int, tuple[object, ...]]:
    """(family, type, proto, sockaddr) for a TCP address; IPv4 first for names."""
    try:
        infos = socket.getaddrinfo(
            address.host or None, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(0, f"cannot resolve {address.host!r} ({address}): {exc.strerror}") from None
    # prefer IPv4 so that 'localhost' answers on 127.0.0.1
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, sockaddr = infos[0]
    return family, kind, proto, sockaddr


def describe(sock: socket.socket, tls: bool) -> str:
    """How the ``Listening on`` lines name a socket: a URL, or unix:PATH."""
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{addr}"
    host = f"[{addr[0]}]" if sock.family == socket.AF_INET6 else addr[0]
    return f"{'https' if tls else 'http'}://{host}:{addr[1]}"


def peer_gone(transport: asyncio.BaseTransport | None) -> bool:
    """The client's FIN (or a reset) has reached the socket, read by the event
    loop yet or not (a peek: nothing is taken from the socket)."""
    if transport is None or transport.is_closing():
        return True
    extra = transport.get_extra_info("socket")
    fd = extra.fileno() if extra is not None else -1
    if fd < 0:
        return False
    sock = socket.socket(fileno=fd)  # (uvloop's own stand-in cannot peek)
    try:
        return not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (ConnectionResetError, BrokenPipeError):
        return True  # a reset: gone too
    except OSError:  # nothing read (BlockingIOError), or not a connection: not known gone
        return False
    finally:
        sock.detach()
