"""The prefork master: gunicorn's arbiter, around qactuar's async workers.

Signal handlers only queue the signal. The main loop wakes on a pipe (the
signal wake-up fd, and workers saying they are ready or want replacing, write
to it) or on its tick, then handles the queued signals, reaps dead workers,
kills hung ones and starts or stops workers as ``pool.plan()`` says, which
makes recycling, reload, SIGTTIN and SIGTTOU one mechanism.

That loop is a coroutine on an asyncio event loop (the standard one, never
uvloop: uvloop points ``signal.set_wakeup_fd`` at its own socket whenever it
runs, so the wake pipe would never hear a signal), so that the master can
serve the admin socket (a ``Companion``) on the same loop, without a thread:
a thread could hold a lock at the moment the master forks. Workers are forked
from inside the running loop; a new worker leaves that loop alone (never
closes or runs it: its epoll instance is the master's too) and makes its own.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import logging
import os
import random
import signal
import socket
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..admin.figures import Totals
from ..asgi.types import ASGIApp
from ..config import Config
from .exits import describe_exit
from .master_loop import Companion, WakePipe
from .pool import MAX_REQUESTS_REASON, WorkerRecord, plan
from .reload import config_for_reload
from .slot import BOOT_ERROR, STACK_SIGNAL, WorkerSlot, WorkerState, beat_interval
from .worker import WorkerSpec, worker_main

if TYPE_CHECKING:
    from .prefork import PreforkSockets

__all__ = ["Arbiter", "Companion", "cpu_count"]

logger = logging.getLogger("qt_server")

#: Workers that die in a row before serving, at start-up, before giving up.
MAX_BOOT_FAILURES = 5
#: Seconds a stopping worker gets beyond GRACEFUL_TIMEOUT (lifespan shutdown)
#: before it is killed.
STOP_SLACK = 5.0
#: Seconds a hung worker gets to print its stacks before SIGKILL.
STACK_WAIT = 0.1
_HANDLED = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


def target_workers(config: Config) -> int:
    """The pool's size: WORKERS; 0 is one per CPU in ``prefork``, and one parent in
    ``fork`` (a master over fork parents started with WORKERS set; set to 0 later, by
    SIGHUP or the admin socket, the master stays until a restart)."""
    if config.WORKERS:
        return config.WORKERS
    return 1 if config.MODEL == "fork" else cpu_count()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Arbiter(WakePipe):
    """The master process: forks and supervises workers; never serves.

    ``listen`` holds the master's sockets (the shared listening socket, or
    with REUSE_PORT the workers' lanes) and, in a new worker, returns the
    ones it serves on. ``app`` is the preloaded app, else None (workers
    import ``target``).
    """

    def __init__(
        self,
        config: Config,
        target: str | ASGIApp | None,
        app: ASGIApp | None,
        listen: PreforkSockets,
    ) -> None:
        self.config = config
        self.target = target
        self.app = app
        self.listen = listen
        self.workers: dict[int, WorkerRecord] = {}
        self.num_workers = target_workers(config)
        self.generation = 0
        self.signals: collections.deque[int] = collections.deque()
        self.pid = os.getpid()
        self.started = time.monotonic()
        #: Workers that died in a row before they served.
        self.boot_failures = 0
        #: fork() calls that failed in a row.
        self.fork_failures = 0
        self.spawn_after = 0.0
        self.halt_reason = ""
        #: "", or how the master is stopping: "graceful" or "now".
        self.stopping = ""
        #: Workers that died or were killed after they served.
        self.died = 0
        #: Workers replaced after MAX_REQUESTS.
        self.recycled = 0
        #: Workers replaced by a reload (SIGHUP, the admin socket's reload).
        self.reload_replaced = 0
        #: The admin figures of the workers gone (ADMIN_ENABLED): counts only.
        self.retired = Totals()
        self.reloads = 0
        #: Workers whose lifespan shutdown failed: the master's exit status says so.
        self.shutdown_failures = 0
        self.init_wake_pipe()  # master_loop.py
        #: Served on the master's loop beside supervising (the admin socket).
        self.companion: Companion | None = None
        #: (generation, reason) of the last worker that failed to start.
        self.boot_failure: tuple[int, str] | None = None
        #: While above 0, no worker is started: a thread of the master imports
        #: apps (admin/live_prefork.py), and a worker forked then would inherit
        #: a module's import lock held.
        self.spawns_held = 0

    # the admin socket's view ------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "master_pid": self.pid,
            "uptime": round(now - self.started, 3),
            "target_workers": self.num_workers,
            "generation": self.generation,
            "reloads": self.reloads,
            "died": self.died,
            "recycled": self.recycled,
            "workers": [w.figures(now) for w in self.workers.values()],
        }

    def totals(self) -> Totals:
        """The admin figures of the whole server now (ADMIN_ENABLED; else empty):
        the live workers' as last published (about once a second) plus those of
        every worker gone (``retired``), so no counter ever goes backwards."""
        totals = Totals()
        totals.add(self.retired)
        for worker in self.workers.values():
            published = self._published(worker)
            if published is not None:
                totals.add(published)
        return totals

    @staticmethod
    def _published(worker: WorkerRecord) -> Totals | None:
        """What ``worker`` published, or what was last read of it whole when a
        write is under way (or was cut short by SIGKILL)."""
        block = worker.slot.figures
        read = block.read() if block is not None else None
        if read is not None:
            worker.last_figures = read
            return read
        last = worker.last_figures
        if last is None:
            return None
        kept = Totals()
        kept.add(last)  # a copy: the caller may change it
        return kept

    @property
    def restarts(self) -> int:
        """Workers that died (crashed, killed, hung) after they served, and were replaced."""
        return self.died

    @property
    def recycles(self) -> int:
        """Workers replaced after MAX_REQUESTS or by a reload."""
        return self.recycled + self.reload_replaced

    def admin_counters(self) -> dict[str, int]:
        """``AdminBackend.counters()``: ``workers`` alive now, ``restarts``, ``recycles``."""
        return {"workers": len(self.workers), "restarts": self.restarts,
                "recycles": self.recycles}

    def retire_figures(self, worker: WorkerRecord) -> None:
        """Fold the figures of ``worker``, gone, into ``retired`` (its gauges dropped)."""
        last = self._published(worker)
        if last is not None:
            last.in_flight = last.http_connections = last.websocket_connections = 0
            self.retired.add(last)

    # signals --------------------------------------------------------------------------

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        for signum in _HANDLED:
            signal.signal(signum, self._record)

    def handle_signals(self) -> str:
        """Act on queued signals; returns "", "graceful" or "now" (stop)."""
        stop = ""
        while self.signals:
            signum = self.signals.popleft()
            if self.stopping and signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
                continue
            if signum == signal.SIGHUP:
                self.reload()
            elif signum == signal.SIGTTIN:
                self.num_workers += 1
                logger.info("SIGTTIN: %d workers", self.num_workers)
            elif signum == signal.SIGTTOU:
                if self.num_workers > 1:
                    self.num_workers -= 1
                    logger.info("SIGTTOU: %d workers", self.num_workers)
                else:
                    logger.info("SIGTTOU ignored: one worker is the least")
            elif signum == signal.SIGTERM:
                logger.info("SIGTERM: stopping gracefully")
                stop = stop or "graceful"
            elif signum == signal.SIGINT:
                if self.stopping or stop:
                    logger.info("Second SIGINT: stopping now")
                    stop = "now"
                else:
                    logger.info("SIGINT: stopping gracefully (again to stop now)")
                    stop = "graceful"
            elif signum == signal.SIGQUIT:
                logger.info("SIGQUIT: stopping now")
                stop = "now"
        return stop

    # workers ----------------------------------------------------------------------------

    def spawn(self, closing: frozenset[socket.socket | None] = frozenset()) -> None:
        """Start a worker; ``closing``: lanes it takes only if no other is free."""
        config = self.config
        # A replacement takes over the lane of the worker it replaces (one
        # retiring, dead, killed or outdated).
        current = self.generation
        taken = {w.lane for w in self.workers.values() if w.generation == current and not w.leaving}
        lane = self.listen.lane_for(taken, closing)
        slot = WorkerSlot(figures=config.ADMIN_ENABLED)
        slot.heartbeat = time.monotonic()
        limit = 0
        if config.MAX_REQUESTS:
            limit = config.MAX_REQUESTS + random.randint(0, config.MAX_REQUESTS_JITTER)
        spec = WorkerSpec(
            config=config,
            app=self.app,
            target=self.target,
            listeners=functools.partial(self.listen.for_worker, lane),
            slot=slot,
            wake_fd=self._wake_w,
            wake_read_fd=self._wake_r,
            master_pid=self.pid,
            max_requests=limit,
            in_child=self.companion.in_child if self.companion is not None else None,
            master_loop=asyncio.events._get_running_loop(),
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # What the master holds (the preloaded apps above all) goes to the
        # permanent generation: the workers' collections never write to
        # those pages, so they stay shared.
        gc.freeze()
        # A signal sent to the worker before it has its own handlers would
        # reach the master's (which only queue it for the master's loop) and
        # be lost: a stop's SIGTERM with it. Blocked, it waits, pending,
        # until worker_main unblocks it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        pid = -1
        try:
            pid = os.fork()
        except OSError:
            slot.close()
            raise
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        if pid == 0:
            worker_main(spec, _HANDLED)  # never returns
        self.fork_failures = 0
        self.workers[pid] = WorkerRecord(
            pid, slot, self.generation, limit, time.monotonic(), lane=lane
        )
        logger.info("Started worker %d", pid)

    def kill(self, worker: WorkerRecord, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def stop_worker(self, worker: WorkerRecord, why: str) -> None:
        logger.info("Stopping worker %d (%s)", worker.pid, why)
        worker.stop_sent = time.monotonic()
        self.kill(worker, signal.SIGTERM)

    def reap(self, killed: frozenset[int] = frozenset()) -> None:
        """Forget the workers that exited; wait for those in ``killed`` (SIGKILLed)."""
        # Worker by worker, not waitpid(-1): a preloaded app's own child
        # processes keep their exit status for the app.
        for worker in list(self.workers.values()):
            try:
                pid, status = os.waitpid(worker.pid, 0 if worker.pid in killed else os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid == 0:
                continue
            del self.workers[worker.pid]
            self.on_exit(worker, status)
            self.retire_figures(worker)
            worker.slot.close()

    def on_exit(self, worker: WorkerRecord, status: int) -> None:
        how = describe_exit(status)
        served = worker.slot.requests
        started = worker.ready or worker.slot.state != WorkerState.BOOTING
        if started and os.WIFEXITED(status) and os.WEXITSTATUS(status) == BOOT_ERROR:
            # it had started, then its lifespan shutdown failed (the worker's reason)
            self.shutdown_failures += 1
            logger.error(
                "Worker %d stopped after %d requests: %s",
                worker.pid, served, worker.slot.reason or how,
            )
            return
        if (
            worker.stop_sent
            and not worker.killed
            and (status == 0 or os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
        ):
            logger.info("Worker %d stopped after %d requests", worker.pid, served)
            return
        if worker.killed:
            logger.error("Worker %d %s (%s)", worker.pid, how, worker.killed)
            if not (worker.ready or worker.stop_sent or self.stopping):
                self.on_boot_failure(worker, status, how)  # it never served
                return
        elif self.stopping:
            logger.info("Worker %d %s", worker.pid, how)
            return
        elif status == 0:
            logger.warning("Worker %d left on its own after %d requests", worker.pid, served)
        elif worker.ready or worker.stop_sent:
            logger.error("Worker %d died: %s, after %d requests", worker.pid, how, served)
        else:
            self.on_boot_failure(worker, status, how)
            return
        if worker.ready and not worker.stop_sent:
            self.died += 1

    def on_boot_failure(self, worker: WorkerRecord, status: int, how: str) -> None:
        self.boot_failures += 1
        reason = worker.slot.reason
        if reason:
            logger.error("Worker %d failed to start (%s): %s", worker.pid, how, reason)
        elif worker.killed:
            reason = f"worker {worker.pid} {worker.killed}"  # on_exit logged it
        else:
            reason = f"worker {worker.pid} {how} before it served"
            logger.error("Worker %d failed to start: %s", worker.pid, how)
        self.boot_failure = (worker.generation, reason)
        serving = any(w.ready and not w.stop_sent for w in self.workers.values())
        if not serving and (
            os.WIFEXITED(status)
            and os.WEXITSTATUS(status) == BOOT_ERROR
            or self.boot_failures >= MAX_BOOT_FAILURES
        ):
            self.halt_reason = reason
            return
        delay = self._back_off(self.boot_failures)
        if serving:
            logger.error("Retrying in %.1fs; the workers already serving go on", delay)

    def _back_off(self, failures: int) -> float:
        """Start no worker for 0.1 s, 0.2 s, ... up to 30 s as failures add up."""
        delay = min(30.0, 0.1 * 2.0 ** (failures - 1))
        self.spawn_after = time.monotonic() + delay
        return delay

    def check_workers(self) -> frozenset[int]:
        """Note ready workers; kill hung ones and those that overrun their stop.

        Returns the pids of the workers killed before they served.
        """
        now = time.monotonic()
        starts: set[int] = set()
        timeout = self.config.WORKER_TIMEOUT
        # The last beat may be up to one interval older than the block began:
        # never kill a loop blocked for less than WORKER_TIMEOUT.
        silence_limit = timeout + beat_interval(timeout)
        drain_limit = self.config.GRACEFUL_TIMEOUT + STOP_SLACK
        for worker in self.workers.values():
            if worker.killed:
                continue
            if not worker.ready and worker.slot.state != WorkerState.BOOTING:
                worker.ready = True
                self.boot_failures = 0
            silent = now - worker.slot.heartbeat
            starting = now - worker.started
            if timeout and not worker.ready and not worker.stop_sent and starting > silence_limit:
                # imports (PRELOAD off) and lifespan startup count, even when
                # the loop runs (a startup that awaits forever)
                worker.killed = f"still starting after {starting:.1f}s, WORKER_TIMEOUT {timeout:g}s"
                logger.error("Worker %d: %s; killing it. Where it was stuck:", worker.pid,
                             worker.killed)
                self.kill_with_stack(worker)
                starts.add(worker.pid)
            elif timeout and silent > silence_limit:
                worker.killed = f"its event loop was blocked for more than {timeout:g}s"
                logger.error(
                    "Worker %d: no heartbeat for %.1fs (WORKER_TIMEOUT %gs); killing it. "
                    "Where it was stuck:",
                    worker.pid,
                    silent,
                    timeout,
                )
                self.kill_with_stack(worker)
            elif worker.stop_sent and now - worker.stop_sent > drain_limit:
                worker.killed = f"still stopping {drain_limit:g}s after SIGTERM"
                logger.error("Worker %d: %s; killing it", worker.pid, worker.killed)
                self.kill_with_stack(worker)
        return frozenset(starts)

    def kill_with_stack(self, worker: WorkerRecord) -> None:
        """SIGKILL, once the worker has printed its threads' stacks (faulthandler)."""
        self.kill(worker, STACK_SIGNAL)
        time.sleep(STACK_WAIT)
        self.kill(worker, signal.SIGKILL)

    def maintain(self) -> None:
        """Start and stop workers until the pool is what it should be."""
        todo = plan(list(self.workers.values()), self.generation, self.num_workers)
        for worker, why in todo.stop:
            if why == MAX_REQUESTS_REASON:
                self.recycled += 1
            elif why == "replaced: reload":  # (pool.plan's words)
                self.reload_replaced += 1
            self.stop_worker(worker, why)
        # a lane whose every worker was just told to stop closes below unless
        # a new worker takes it: one does only if no lane with a worker still
        # serving is free (a shrinking pool keeps the lanes that serve)
        holding = {w.lane for w in self.workers.values() if not (w.stop_sent or w.killed)}
        closing = frozenset(w.lane for w, _ in todo.stop if w.lane not in holding)
        if time.monotonic() >= self.spawn_after and not self.spawns_held:
            for _ in range(todo.start):
                try:
                    self.spawn(closing)
                except OSError as exc:  # out of processes, memory or descriptors
                    # not a boot failure: the app is fine, so it never halts the master
                    self.fork_failures += 1
                    delay = self._back_off(self.fork_failures)
                    logger.error("Cannot start a worker (%s); retrying in %.1fs", exc, delay)
                    break
        # a retiring worker keeps its lane until it is told to stop (its
        # replacement takes the lane over)
        self.listen.prune({w.lane for w in self.workers.values() if not (w.stop_sent or w.killed)})

    # reload -------------------------------------------------------------------------------

    def reload(self) -> None:
        config = config_for_reload(self.config, preloaded=self.app is not None)
        if config is None:
            return
        self.config = config
        self.num_workers = target_workers(config)
        self.generation += 1
        self.reloads += 1
        self.boot_failures = 0
        self.spawn_after = 0.0
        logger.info("SIGHUP: reloading; replacing the workers with %d new ones", self.num_workers)

    def switch(self, config: Config, replace: bool, app: ASGIApp | None,
               target: str | ASGIApp | None, keep: int | None = None) -> int:
        """Put ``config`` in force now (the admin socket: admin/live_prefork.py).

        WORKERS, MAX_REQUESTS and WORKER_TIMEOUT apply from the loop's next
        turn; with ``replace``, every worker is replaced as on SIGHUP, by new
        ones serving ``app`` (preloaded) or importing ``target`` / APPS. The
        workers of generation ``keep`` run ``config`` already: they are taken
        as current rather than replaced (a change taken back). Returns the
        generation now current.
        """
        self.config = config
        self.num_workers = target_workers(config)
        if replace:
            self.app, self.target = app, target
            self.generation += 1
            self.boot_failures = 0
            self.spawn_after = 0.0
            for worker in self.workers.values():
                if worker.generation == keep:
                    worker.generation = self.generation
        try:
            os.write(self._wake_w, b"a")
        except (BlockingIOError, BrokenPipeError):
            pass
        return self.generation

    # the main loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; returns the exit status."""
        # the standard loop, not LOOP's: see the module's doc (uvloop and the wake pipe)
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            return runner.run(self.supervise())

    async def supervise(self) -> int:
        """``run``'s coroutine: on the running loop, until stopped; the exit status."""
        self.install_signal_handlers()
        self._watch_wake_pipe()
        try:
            if self.companion is not None:
                await self.companion.start()
            logger.info("Master %d keeps %d workers", self.pid, self.num_workers)
            try:
                return await self._loop()
            except Exception:
                if self.pid != os.getpid():
                    raise  # a worker's failure is the worker's to report
                logger.exception("The master failed; stopping the workers")
                if not self.stopping:
                    await self.drain("now")
                return 1
        finally:
            if self.pid == os.getpid():
                self._unwatch_wake_pipe()

    async def _loop(self) -> int:
        while True:
            stop = self.handle_signals()
            if stop:
                return await self.drain(stop)
            self.reap()
            if self.halt_reason:
                logger.error("Workers cannot start: %s. Stopping.", self.halt_reason)
                await self.drain("now")
                return BOOT_ERROR
            failed_starts = self.check_workers()
            if failed_starts:
                # a failed start counts (back-off, giving up) before a
                # replacement starts
                self.reap(failed_starts)
                continue
            self.maintain()
            tick = beat_interval(self.config.WORKER_TIMEOUT)
            await self.sleep(min(tick, max(0.0, self.spawn_after - time.monotonic()) or tick))

    def stop(self, how: str) -> int:
        """``drain`` from outside any event loop (a test driving the arbiter by hand)."""
        return asyncio.run(self.drain(how))

    async def drain(self, how: str) -> int:
        """Stop every worker (drain, or at once) and wait for them, then the companion."""
        self.stopping = how
        for sock in self.listen.sockets:
            sock.close()  # once the workers close theirs, new clients are refused
        graceful = how == "graceful"
        limit = self.config.GRACEFUL_TIMEOUT + STOP_SLACK if graceful else 1.0
        deadline = time.monotonic() + limit
        for worker in self.workers.values():
            worker.stop_sent = time.monotonic()
            self.kill(worker, signal.SIGTERM if graceful else signal.SIGQUIT)
        while self.workers and time.monotonic() < deadline:
            if self.handle_signals() == "now" and graceful:
                graceful = False
                self.stopping = "now"
                deadline = min(deadline, time.monotonic() + 1.0)
                for worker in self.workers.values():
                    self.kill(worker, signal.SIGQUIT)
            self.reap()
            await self.sleep(0.1)
        for worker in list(self.workers.values()):
            logger.warning("Worker %d still running; killing it", worker.pid)
            worker.killed = "stop took too long"
            self.kill(worker, signal.SIGKILL)
            try:
                os.waitpid(worker.pid, 0)
            except ChildProcessError:
                pass
            self.retire_figures(worker)
            self.workers.pop(worker.pid, None)
        if self.companion is not None:
            await self.companion.stop(now=self.stopping == "now")
        logger.info("Master %d stopped", self.pid)
        # as the async and fork models: 3 when an app's lifespan shutdown failed
        return BOOT_ERROR if self.shutdown_failures else 0
