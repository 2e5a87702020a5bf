"""At the descriptor limit (EMFILE): the connections qactuar cannot take are
closed at once, counted and logged, one WARNING line per interval at most, and
service resumes once descriptors are free again; in every model.

The server runs under a low RLIMIT_NOFILE (tests/apps/low_fds.py, the
launcher, sets it as ``prlimit`` would). Its process group is stopped
(SIGSTOP) while the clients connect, so that the kernel queues them all and the
server meets them in one accept batch: a known number of connections per
burst, whatever the machine's load.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from support import RawClient, Spawned, children_of, wait_until

from qactuar.server.accept import DROP_LOG_INTERVAL, DropLog

MODEL_ARGS = {
    "fork": ("--model", "fork"),
    "async": ("--model", "async"),
    "prefork": ("--model", "prefork", "--workers", "1"),
    "async-asyncio": ("--model", "async", "--loop", "asyncio"),  # not uvloop (libuv)
}
NOFILE = 64
#: More than the server can hold under NOFILE: the rest are dropped.
CLIENTS = 100
INTERVAL = 3.0
DROPPED = re.compile(r"Too many open files \(process \d+, descriptor limit 64\): "
                     r"dropped (\d+) new connection\(s\)")


@contextmanager
def stopped(server: Spawned) -> Iterator[None]:
    """Every process of the server's group stopped: clients queue in the backlog."""
    os.killpg(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(server.pid, signal.SIGCONT)


def connect(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def closed_by_server(clients: list[socket.socket]) -> list[socket.socket]:
    """The clients whose connection the server has closed (EOF waiting to be read)."""
    readable, _, _ = select.select(clients, [], [], 0)
    return [sock for sock in readable if sock.recv(1, socket.MSG_PEEK) == b""]


def counts(server: Spawned) -> list[int]:
    return [int(n) for n in DROPPED.findall(server.output())]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("model", list(MODEL_ARGS))
def test_connections_dropped_at_the_descriptor_limit_are_logged_with_their_count(
    model, spawn_qactuar
):
    server = spawn_qactuar(
        "basic:hello", *MODEL_ARGS[model], "--header-timeout", "60", launcher="low_fds",
        env={"NOFILE": str(NOFILE), "DROP_LOG_INTERVAL": str(INTERVAL)})
    accepting = server.pid
    if model.startswith("prefork"):
        server.wait_for_log(" serving")  # "Worker N serving": it accepts from now on
        [accepting] = children_of(server.pid)
    clients: list[socket.socket] = []
    try:
        with stopped(server):
            clients += connect(server.port, CLIENTS)
        server.wait_for_log("new connection(s)")
        seen_first = time.monotonic()
        [first] = counts(server)  # one line for the whole burst, not one per connection
        assert first >= 10, server.output()[-2000:]
        dropped = wait_until(lambda: len(closed_by_server(clients)) == first and clients,
                             what=f"{first} clients closed by the server")
        assert dropped

        # a second burst within the interval: counted, logged at its end
        with stopped(server):
            burst = connect(server.port, 10)
        clients += burst
        server.wait_for_log("new connection(s)", count=2, timeout=INTERVAL + 10)
        assert time.monotonic() - seen_first >= INTERVAL - 1  # not at once (lower bound)
        assert counts(server) == [first, 10]
        assert len(closed_by_server(burst)) == 10
    finally:
        for sock in clients:
            sock.close()
    # the clients gone, their descriptors come back and service resumes
    wait_until(lambda: open_fds(accepting) < NOFILE - 8,
               what="the server to close the connections its clients left")
    with RawClient(server.port) as client:
        assert client.request("/").status == 200
    assert counts(server) == [first, 10]  # nothing dropped since


class FakeLoop:
    """The clock and the one timer DropLog uses, driven by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        self.timers.append((when, callback))
        return FakeTimer()

    def run_timers(self) -> None:
        due = [t for t in self.timers if t[0] <= self.now]
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, callback in due:
            callback()


class FakeTimer:
    def cancel(self) -> None:
        pass


def test_drops_are_logged_at_most_once_per_interval_with_every_count(caplog):
    loop = FakeLoop()
    drops = DropLog(loop)  # type: ignore[arg-type]
    emfile = OSError(errno.EMFILE, "Too many open files")
    caplog.set_level(logging.WARNING, "qt_server")

    def lines() -> list[int]:
        return [int(n) for n in re.findall(r"dropped (\d+) new", caplog.text)]

    drops.count(3, 0, emfile)
    assert lines() == [3]  # the first at once
    loop.now += 1
    drops.count(2, 0, emfile)
    loop.now += 5
    drops.count(4, 0, emfile)
    assert lines() == [3] and [when for when, _ in loop.timers] == [100.0 + DROP_LOG_INTERVAL]
    loop.now = 100.0 + DROP_LOG_INTERVAL - 0.001
    loop.run_timers()
    assert lines() == [3]
    loop.now = 100.0 + DROP_LOG_INTERVAL
    loop.run_timers()
    assert lines() == [3, 6]  # what the interval dropped, in one line at its end
    loop.now += DROP_LOG_INTERVAL + 1
    drops.count(1, 0, emfile)  # quiet for a whole interval: at once again
    assert lines() == [3, 6, 1] and loop.timers == []
