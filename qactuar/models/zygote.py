"""The fork model's zygote: the quiet process every request's child is forked from.

The serving parent does not fork its children itself. At start (and again
whenever the apps or the config change, or the zygote dies) it forks a
*zygote*: a copy of itself taken before it holds any connection, which
closes the parent's listeners and clients, runs no event loop, and then
only waits on a control socket. For each request the parent sends it one
end of a socketpair (``SCM_RIGHTS``); the zygote forks a child that runs
the application over that socketpair (``relay.serve_in_child``), or hands
it to a child forked ahead (FORK_AHEAD: ``Spares``), says so, then reports
the child's exit.

Why: a process that forks shares its pages with the child, so every page it
writes while a child lives is copied (a page fault and 4 KiB), and a child
of a busy process inherits a larger, more scattered heap whose page tables
fork and exit must copy and tear down. The serving parent writes hundreds
of pages per request; the zygote, which does nothing between forks, writes
a handful. Measured in ``benchmarks/fork_model.py``.

The control socket is a ``SOCK_SEQPACKET`` pair, so each message arrives
whole; messages are ``marshal``-ed tuples:

- parent -> zygote: ``(token,)`` with the child's end of a socketpair: fork
  a child for it. ``("kill", pid)``: SIGKILL that child (for a child the
  parent holds no pidfd of). ``("retire",)``, or the end of stream (the
  parent is gone): fork no more (kills are still taken); exit once every
  child has been reaped and reported. At the end of stream the children
  left are killed: their parent, the only reader of their answers, is gone.
- zygote -> parent: ``("forked", token, pid)`` with a pidfd of the child (the
  parent signals it through the pidfd, so a recycled pid is never hit), or
  with none when no pidfd could be made or passed (out of descriptors, in
  the zygote or the parent: the parent then has the zygote kill it);
  ``("failed", token, reason)`` when fork() failed or no descriptor came
  with the request; ``("exited", pid, status, user, system, maxrss)`` once
  the zygote has reaped it.

A child's exit status comes from the zygote (only a parent may wait for a
process), in order after its ``forked``. If the zygote dies, the serving
parent kills the children it knows of, answers their requests 502 and forks
a new zygote.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (no stubs)
import asyncio
import gc
import logging
import marshal
import os
import select
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["PARENT_SIGNALS", "Serve", "Spares", "ZygoteLink", "start_zygote"]

#: What a child of the zygote runs: ``serve(sock, ahead)`` (fork_child.serve_spawned).
Serve = Callable[[socket.socket, bool], NoReturn]

logger = logging.getLogger("qt_server")

#: The parent's stop signals. A process forked from the parent that got one
#: before it ignores it would run the parent's handler, which hands the
#: signal to the parent's event loop through the wakeup descriptor both
#: share: the parent would stop (or take a single Ctrl-C for a second one).
#: The parent blocks them around fork(); the zygote unblocks them once they
#: are ignored.
PARENT_SIGNALS = (_signal.SIGINT, _signal.SIGTERM)

#: Seconds with nothing to do after which the zygote forks the spares it lacks.
SPARE_IDLE = 0.005
#: Largest control message (a zygote's are a few dozen bytes).
_MESSAGE = 256


class ZygoteLink:
    """The serving parent's end of its zygote: spawn requests out, news back.

    ``on_forked(token, pid, pidfd)`` (pidfd -1: none came),
    ``on_failed(token, reason)``, ``on_exited(link, pid, status, user, system,
    maxrss)`` and ``on_gone(link)`` are called on the parent's event loop.
    """

    def __init__(
        self,
        pid: int,
        ctl: socket.socket,
        on_forked: Callable[[int, int, int], None],
        on_failed: Callable[[int, str], None],
        on_exited: Callable[[ZygoteLink, int, int, float, float, int], None],
        on_gone: Callable[[ZygoteLink], None],
    ) -> None:
        self.pid = pid
        self.ctl = ctl
        #: The control socket's descriptor (in the parent's ``child_closes``).
        self.fd = ctl.fileno()
        self.retired = False
        #: time.monotonic() when it was forked
        self.started = time.monotonic()
        self._on_forked = on_forked
        self._on_failed = on_failed
        self._on_exited = on_exited
        self._on_gone = on_gone
        ctl.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(ctl.fileno(), self._readable)
        #: Resolves once the zygote has exited and been reaped.
        self.gone: asyncio.Future[int] = self._loop.create_future()
        #: Requests the control socket had no room for yet, in order (with the
        #: socketpair end a spawn request passes).
        self._queued: deque[tuple[bytes, socket.socket | None]] = deque()
        self._closed = False

    def spawn(self, token: int, end: socket.socket) -> bool:
        """Ask for a child serving the socketpair end ``end`` (this link closes it once
        sent); False, and ``end`` closed, if the zygote is gone or retired."""
        if self.retired or self._closed:
            end.close()
            return False
        return self._send(marshal.dumps((token,)), end)

    def kill(self, pid: int) -> None:
        """Have the zygote SIGKILL its child ``pid`` (still its own: not reaped)."""
        if not self._closed:
            self._send(marshal.dumps(("kill", pid)), None)

    def _send(self, message: bytes, end: socket.socket | None) -> bool:
        self._queued.append((message, end))
        if len(self._queued) == 1:
            return self._flush()
        return True

    def _flush(self) -> bool:
        """Send what is queued; on a full socket, again once it is writable."""
        queued = self._queued
        while queued:
            message, end = queued[0]
            try:
                socket.send_fds(self.ctl, [message], [end.fileno()] if end is not None else [])
            except BlockingIOError:  # a burst of requests: the zygote catches up
                self._loop.add_writer(self.ctl.fileno(), self._writable)
                return True
            except OSError:  # gone (EPIPE, ECONNRESET): _readable sees it
                self._drop_queued()
                return False
            queued.popleft()
            if end is not None:
                end.close()
        return True

    def _drop_queued(self) -> None:
        for _, unsent in self._queued:
            if unsent is not None:
                unsent.close()  # (its relay sees the child's end close)
        self._queued.clear()

    def _writable(self) -> None:
        self._loop.remove_writer(self.ctl.fileno())
        self._flush()

    def retire(self) -> None:
        """Fork no more (after what is queued): the zygote still takes kills, and
        exits once its last child is reported."""
        if not self.retired and not self._closed:
            self.retired = True
            self._send(marshal.dumps(("retire",)), None)

    def _readable(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.ctl, _MESSAGE, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._ended()
                return
            try:
                message: tuple[Any, ...] = marshal.loads(data)
                kind = message[0]
                if kind == "forked":
                    self._on_forked(message[1], message[2], fds[0] if fds else -1)
                elif kind == "exited":
                    self._on_exited(self, *message[1:])
                else:  # "failed"
                    self._on_failed(message[1], message[2])
            except Exception:  # a bug here must not stop the news of every later child
                logger.exception("zygote %d: its message %r could not be handled", self.pid, data)

    def _ended(self) -> None:
        self._closed = True
        self._loop.remove_reader(self.ctl.fileno())
        self._loop.remove_writer(self.ctl.fileno())
        self._drop_queued()
        self.ctl.close()
        self._reap()
        self._on_gone(self)

    def _reap(self) -> None:
        """The zygote closed its end: it is exiting. Reap it off the loop's path."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid:
            if not self.gone.done():
                self.gone.set_result(status)
            return
        self._loop.call_later(0.01, self._reap)


def start_zygote(
    closes: list[int] | Any,
    serve: Serve,
    fork: Callable[[], int],
    ahead: int = 0,
) -> tuple[int, socket.socket]:
    """Fork a zygote; returns its pid and the parent's end of the control socket.

    ``closes`` are the parent's descriptors the zygote closes first thing
    (listeners, clients, pidfds...); ``serve(sock, False)`` is what each of
    its children runs, ``serve(channel, True)`` what a child forked ahead
    runs (``Spares``); ``fork`` forks the parent (with its signals blocked);
    ``ahead``: how many children to keep forked ahead (FORK_AHEAD).
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = fork()
    if pid == 0:
        code = 1
        try:
            ours.close()
            _run(theirs, closes, serve, ahead)
            code = 0
        except BaseException:
            logger.exception("the zygote %d failed", os.getpid())
        finally:
            os._exit(code)
    theirs.close()
    return pid, ours


def _run(ctl: socket.socket, closes: Any, serve: Serve, ahead: int = 0) -> None:
    """The zygote's life: fork on request, reap, report; until the parent is done."""
    # Nothing here may free the parent's objects (their finalizers would
    # close descriptors or unregister them from the epoll instance the
    # parent's loop shares with this process): keep them, forever.
    gc.freeze()
    for fd in closes:
        try:
            os.close(fd)
        except OSError:
            pass
    asyncio.events._set_running_loop(None)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    _signal.set_wakeup_fd(wake_w)
    # Ctrl-C and a service manager's SIGTERM reach the whole process group;
    # the parent decides when the zygote goes (it closes the control socket)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    _signal.signal(_signal.SIGCHLD, _noop)  # wakes poll() through wake_w
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, PARENT_SIGNALS)
    ctl.setblocking(True)
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    alive: set[int] = set()
    spares = Spares(ahead, serve, ctl, (wake_r, wake_w), alive)
    serving = reading = True
    while serving or alive:
        spares.fill(serving)
        for fd, _ in poller.poll(spares.wait()):
            if fd == wake_r:
                _drain(wake_r)
            elif reading:
                told = _obey(ctl, spares, alive, serving)
                if told != _MORE:
                    serving = False  # retired: kills are still taken until the end
                    spares.retire()
                if told == _END:
                    reading = False
                    poller.unregister(ctl.fileno())
                    # the parent is gone (killed: a stop kills the children
                    # first): no one reads what these children answer, and
                    # no one would stop one that hangs
                    for pid in alive:
                        os.kill(pid, signal.SIGKILL)
        _reap(ctl, alive, spares)


def _noop(signum: int, frame: Any) -> None:
    pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


_MORE, _RETIRED, _END = 0, 1, 2


def _obey(ctl: socket.socket, spares: Spares, alive: set[int], serving: bool) -> int:
    """Do what the parent's next message says: fork a child for a request, kill
    one, or fork no more (``_RETIRED``); ``_END`` at its end of stream."""
    try:
        data, fds, _, _ = socket.recv_fds(ctl, _MESSAGE, 1)
    except ConnectionResetError:  # the parent died with news of ours unread
        data, fds = b"", []
    if not data:
        for fd in fds:
            os.close(fd)
        return _END
    after = _MORE if serving else _RETIRED
    message = marshal.loads(data)
    if message[0] == "kill":
        if message[1] in alive:  # (else reaped already: the pid may be another's)
            os.kill(message[1], signal.SIGKILL)
        return after
    if message[0] == "retire":
        return _RETIRED
    (token,) = message
    if not fds or not serving:  # the descriptor could not be passed (out of them)
        for fd in fds:
            os.close(fd)
        _tell(ctl, ("failed", token, "no descriptor came with the request"))
        return after
    end = socket.socket(fileno=fds[0])
    pid = spares.take(end)  # a child forked ahead, if one waits
    if pid < 0:
        try:
            pid = spares.fork(end, False)
        except OSError as exc:  # EAGAIN, ENOMEM
            end.close()
            _tell(ctl, ("failed", token, str(exc)))
            return after
    end.close()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # EMFILE: the parent will have this process kill it
        pidfd = -1
    try:
        _tell(ctl, ("forked", token, pid), pidfd)
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return after


def _reap(ctl: socket.socket, alive: set[int], spares: Spares) -> None:
    while alive:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            alive.clear()
            return
        if not pid:
            return
        alive.discard(pid)
        spares.exited(pid)
        _tell(ctl, ("exited", pid, status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))


class Spares:
    """Children forked ahead of demand (FORK_AHEAD), each waiting for a request.

    A spare is forked with a ``SOCK_SEQPACKET`` channel of its own; it sets
    itself up (signals, the collector, a fresh event loop) and waits. A
    request's socketpair end goes to the oldest spare over its channel, and
    another is forked to take its place once the zygote has had nothing to do
    for ``SPARE_IDLE`` (a fork costs a core about a millisecond: at once, it
    would compete with the request's child, on a busy or a single core);
    a spare never gets a second request (its channel closes once it has one). Retired (the
    zygote retires), the channels close and the spares exit unused. A spare
    that exits before it had a request stops the forking ahead for a second
    (an app whose import breaks in a fresh process would make a fork loop).
    Every child the zygote forks closes the other spares' channels: a copy
    of one held elsewhere would keep a retired spare waiting.
    """

    def __init__(self, target: int, serve: Serve, ctl: socket.socket, own: tuple[int, ...],
                 alive: set[int]) -> None:  # fmt: skip
        self.target = target
        self._serve = serve
        self._ctl = ctl
        self._own = own
        self._alive = alive
        self._waiting: deque[tuple[int, socket.socket]] = deque()
        self._paused_until = 0.0
        #: No spare is forked before then: the zygote forked or handed one out.
        self._busy_until = 0.0

    def fork(self, sock: socket.socket, ahead: bool, ours: socket.socket | None = None) -> int:
        """Fork a child that serves ``sock`` (``ahead``: a spare's channel, whose other
        end is ``ours``); OSError as fork()."""
        self._busy_until = time.monotonic() + SPARE_IDLE
        pid = os.fork()
        if pid == 0:
            try:
                self._ctl.close()
                for fd in self._own:
                    os.close(fd)
                for _, channel in self._waiting:
                    channel.close()
                if ours is not None:
                    ours.close()
                self._serve(sock, ahead)  # never returns
            finally:
                os._exit(1)  # (never the zygote's loop in a child, whatever failed)
        self._alive.add(pid)
        return pid

    def fill(self, serving: bool) -> None:
        """Fork one spare if some are missing (not when retired, nor paused after a
        failure): one a pass, so that a message waits for one fork at most."""
        if not serving or len(self._waiting) >= self.target:
            return
        now = time.monotonic()
        if now < self._busy_until or (self._paused_until and now < self._paused_until):
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:  # out of descriptors or memory: no spare, a request still forks
            self._paused_until = time.monotonic() + 1.0
            return
        try:
            pid = self.fork(theirs, True, ours)
        except OSError:
            ours.close()
            self._paused_until = time.monotonic() + 1.0
            return
        finally:
            theirs.close()
        self._waiting.append((pid, ours))

    def wait(self) -> int | None:
        """poll()'s timeout in ms: none, unless spares are due (the next one
        ``SPARE_IDLE`` after the last fork or request)."""
        if len(self._waiting) >= self.target:
            return None
        due = max(self._busy_until, self._paused_until)
        return max(0, int((due - time.monotonic()) * 1000) + 1)

    def take(self, end: socket.socket) -> int:
        """Hand ``end`` to the oldest spare; its pid, or -1 if none took it."""
        while self._waiting:
            pid, channel = self._waiting.popleft()
            self._busy_until = time.monotonic() + SPARE_IDLE
            try:
                socket.send_fds(channel, [b"r"], [end.fileno()])
            except OSError:  # it died waiting (its exit is reaped and told)
                continue
            finally:
                channel.close()
            return pid
        return -1

    def exited(self, pid: int) -> None:
        """A child was reaped: a spare still waiting failed (stop forking ahead a while)."""
        for i, (spare, channel) in enumerate(self._waiting):
            if spare == pid:
                del self._waiting[i]
                channel.close()
                self._paused_until = time.monotonic() + 1.0
                return

    def retire(self) -> None:
        """Fork no more; the waiting spares' channels close: they exit unused."""
        self.target = 0
        while self._waiting:
            self._waiting.popleft()[1].close()


def _tell(ctl: socket.socket, message: tuple[Any, ...], fd: int = -1) -> None:
    try:
        socket.send_fds(ctl, [marshal.dumps(message)], [fd] if fd >= 0 else [])
    except OSError:
        pass  # the parent is gone: nothing to tell
