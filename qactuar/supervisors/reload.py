"""``--reload``: restart the server, with freshly imported code, when a watched file changes.

A small supervisor process binds the listening sockets once and runs the
real server (any model) as a child process, a fresh interpreter, handed
those sockets by descriptor (``FD``, the mechanism of ``--fd``). The
sockets never close, so a restart never refuses a connection: clients
queue in the backlog while no server accepts.

On a change, the new server starts *before* the old one stops. It first
imports the app and says so on a pipe; only then is the old server told to
stop (SIGTERM: it finishes what it serves, while the new one runs lifespan
startup and begins to accept). Code that does not import (a syntax error
mid-edit) is logged in one line by the new process, which exits; the old
server goes on serving the last code that worked, and the supervisor waits
for the next change. In ``prefork`` the whole master restarts the same way,
whatever ``PRELOAD`` says.

SIGTERM or SIGINT (Ctrl-C) to the supervisor stops the servers gracefully
and then the supervisor; a second SIGINT kills them. A server also gets
SIGTERM from the kernel should the supervisor die (``PR_SET_PDEATHSIG``).
SIGHUP restarts the server as a change would.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import PurePath
from types import FrameType
from typing import TYPE_CHECKING

from ..asgi.types import ASGIApp
from ..config import Config, ConfigError
from ..models.exits import describe_exit
from ..server import BindError, bind_sockets
from ..server.sockets import describe, remove_unix_socket

if TYPE_CHECKING:
    import watchfiles

__all__ = ["check_reload", "run_reload"]

logger = logging.getLogger("qt_server")

#: Files always watched, besides RELOAD_INCLUDE.
DEFAULT_INCLUDE = ("*.py",)
#: How often (ms) the supervisor looks at its servers while no file changes.
POLL_MS = 100
#: Seconds a stopping server gets beyond GRACEFUL_TIMEOUT before SIGKILL.
STOP_SLACK = 5.0


def check_reload(config: Config, target: str | ASGIApp | None) -> None:
    """ConfigError unless RELOAD can work: an import string and watchfiles."""
    source = config.source_of("RELOAD")
    if target is not None and not isinstance(target, str):
        raise ConfigError(
            "RELOAD", True, source,
            "needs the app as a 'module:attribute' string (or APPS), not an app object: "
            "each restart imports it afresh",
        )
    if config.REUSE_PORT and config.supervised:
        raise ConfigError(
            "REUSE_PORT", True, config.source_of("REUSE_PORT"),
            "cannot be used with RELOAD: the reload supervisor holds the sockets",
        )
    for directory in config.RELOAD_DIR:
        if not os.path.isdir(directory):
            raise ConfigError(
                "RELOAD_DIR", config.RELOAD_DIR, config.source_of("RELOAD_DIR"),
                f"{directory!r} is not a directory",
            )
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ConfigError(
            "RELOAD", True, source,
            "needs the watchfiles package: pip install 'qactuar[reload]'",
        ) from None


@dataclass
class _Server:
    """One child running the server; ``ready_fd`` says when its code imported."""

    proc: subprocess.Popen[bytes]
    ready_fd: int
    ready: bool = False
    stop_sent: float = 0.0

    def check_ready(self) -> bool:
        if not self.ready and self.ready_fd >= 0:
            try:
                self.ready = os.read(self.ready_fd, 1) == b"1"
            except BlockingIOError:
                return False
            self._close_pipe()
        return self.ready

    def _close_pipe(self) -> None:
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if not self.stop_sent:
            self.stop_sent = time.monotonic()
            self.signal(signal.SIGTERM)

    def exited(self) -> bool:
        if self.proc.poll() is None:
            return False
        self._close_pipe()
        return True

    def how(self) -> str:
        code = self.proc.returncode
        return describe_exit(-code if code < 0 else code << 8)


class _Filter:
    """Which changed paths restart the server: watchfiles' defaults, then the globs."""

    def __init__(self, config: Config) -> None:
        import watchfiles

        self.default = watchfiles.DefaultFilter()
        self.include = (*DEFAULT_INCLUDE, *config.RELOAD_INCLUDE)
        self.exclude = tuple(config.RELOAD_EXCLUDE)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if not self.default(change, path):
            return False
        pure = PurePath(path)
        return any(pure.match(g) for g in self.include) and not any(
            pure.match(g) for g in self.exclude
        )


class ReloadSupervisor:
    """Binds once, runs the server as a child, restarts it on changes."""

    def __init__(self, config: Config, target: str | None) -> None:
        self.config = config
        self.target = target
        self.sockets: list[socket.socket] = []
        self.current: _Server | None = None
        self.pending: _Server | None = None
        self.stopping: list[_Server] = []
        self.stop_event = threading.Event()
        self.signals = 0
        self.restart_asked = False

    # signals ------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            logger.info("%s: stopping the server", signal.Signals(signum).name)
        elif signum == signal.SIGINT:
            logger.info("Second SIGINT: killing the server")
            for server in self._servers():
                server.signal(signal.SIGKILL)
        self.stop_event.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.restart_asked = True

    def _servers(self) -> list[_Server]:
        found = [self.current, self.pending, *self.stopping]
        return [server for server in found if server is not None]

    # the servers --------------------------------------------------------------------

    def start(self) -> None:
        """Start a server with the code as it is now; the current one serves meanwhile."""
        if self.pending is not None:
            self.pending.stop()  # it imports code older than this change
            self.stopping.append(self.pending)
            self.pending = None
        config = copy.deepcopy(self.config)
        fds = [sock.fileno() for sock in self.sockets]
        config.update({"RELOAD": False, "BIND": [], "FD": fds}, "reload supervisor")
        config_r, config_w = os.pipe()
        ready_r, ready_w = os.pipe()
        # Never a stale .pyc: an edit within the second that wrote one, to a
        # file of the same size, would otherwise go unseen.
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "qactuar.supervisors.child",
                 str(config_r), str(ready_w), str(os.getpid())],
                pass_fds=(config_r, ready_w, *fds),
                env=env,
            )
        finally:
            os.close(config_r)
            os.close(ready_w)
        try:
            with os.fdopen(config_w, "wb") as pipe:
                pickle.dump((config, self.target), pipe)
        except BrokenPipeError:
            pass  # it died at once; poll() reports it
        os.set_blocking(ready_r, False)
        self.pending = _Server(proc, ready_r)

    def poll(self) -> None:
        """Promote a server whose code imported; report the ones that ended."""
        pending, current = self.pending, self.current
        if pending is not None and pending.check_ready():
            if current is not None:
                logger.info("Reload: server %d loaded the code; stopping server %d",
                            pending.proc.pid, current.proc.pid)
                current.stop()
                self.stopping.append(current)
            else:
                logger.info("Reload: server %d loaded the code", pending.proc.pid)
            self.current, self.pending = pending, None
        elif pending is not None and pending.exited():
            self.pending = None
            logger.error(
                "Reload: the code does not load (see above); %s; waiting for the next change",
                "the previous code goes on serving" if current else "nothing serves",
            )
        current = self.current
        if current is not None and current.exited():
            self.current = None
            if not self.stop_event.is_set():
                logger.error(
                    "Reload: the server %s; waiting for a change to start it again",
                    current.how(),
                )
        now = time.monotonic()
        limit = self.config.GRACEFUL_TIMEOUT + STOP_SLACK
        for server in list(self.stopping):
            if server.exited():
                self.stopping.remove(server)
            elif now - server.stop_sent > limit:
                logger.warning("Server %d still stopping; killing it", server.proc.pid)
                server.signal(signal.SIGKILL)

    # the main loop ------------------------------------------------------------------

    def run(self) -> int:
        import watchfiles

        try:
            self.sockets = bind_sockets(self.config)
        except BindError as exc:
            logger.error("%s", exc.strerror or exc)
            return 1
        for sock in self.sockets:
            logger.info("Listening on %s", describe(sock, bool(self.config.SSL_CERT_PATH)))
        dirs = [os.path.abspath(d) for d in self.config.RELOAD_DIR or ["."]]
        logger.info(
            "Reload: watching %s for %s", ", ".join(dirs),
            ", ".join((*DEFAULT_INCLUDE, *self.config.RELOAD_INCLUDE)),
        )
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.start()
        try:
            for changes in watchfiles.watch(
                *dirs,
                watch_filter=_Filter(self.config),
                stop_event=self.stop_event,
                rust_timeout=POLL_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                self.poll()
                if self.stop_event.is_set():
                    break
                if changes or self.restart_asked:
                    self.restart_asked = False
                    names = sorted({os.path.relpath(path) for _, path in changes})
                    logger.info("Reload: %s changed; restarting", ", ".join(names) or "SIGHUP")
                    self.start()
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Stop every server (gracefully unless told twice) and wait for them."""
        for server in self._servers():
            server.stop()
        deadline = time.monotonic() + self.config.GRACEFUL_TIMEOUT + STOP_SLACK
        while self._servers():
            self.stopping += [s for s in (self.current, self.pending) if s is not None]
            self.current = self.pending = None
            self.stopping = [s for s in self.stopping if not s.exited()]
            if time.monotonic() >= deadline:
                for server in self.stopping:
                    logger.warning("Server %d still stopping; killing it", server.proc.pid)
                    server.signal(signal.SIGKILL)
                    server.proc.wait()
                self.stopping = []
            time.sleep(0.05)
        for sock in self.sockets:
            path = sock.getsockname() if sock.family == socket.AF_UNIX else None
            sock.close()
            if path:
                remove_unix_socket(path)  # the file it bound, if still that one


def run_reload(config: Config, target: str | None) -> int:
    """Supervise the server until stopped; returns the exit status."""
    return ReloadSupervisor(config, target).run()
