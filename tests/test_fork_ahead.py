"""FORK_AHEAD: children forked ahead of demand, each set up and waiting for one request.

Seen from outside: the zygote's children before and after requests, the
pid that answers each request, module state, a spare killed while it waits,
a change of FORK_AHEAD through the admin socket (the old zygote's spares
leave unused), a stop that leaves no process.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

import httpx
import pytest
from support import alive, children_of, wait_until
from support.admin import ADMIN, TOKEN, Admin, admin_port

from qactuar.models import zygote as zygote_module

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")

APP = "zygote_app:app"


def zygote_of(parent: int) -> int:
    (zygote,) = wait_until(lambda: children_of(parent) if len(children_of(parent)) == 1 else None,
                           10, what="one zygote")
    return zygote


def spares(zygote: int, count: int, served: Any = ()) -> list[int]:
    """The zygote's children once they are ``count`` spares: none of them a child
    that ``served`` (a child lives on a moment after its response)."""

    def waiting() -> list[int] | None:
        found = children_of(zygote)
        return found if len(found) == count and not set(found) & set(served) else None

    return wait_until(waiting, 10, what=f"{count} children of the zygote waiting")


def test_a_request_is_answered_by_a_child_forked_ahead_and_it_is_replaced(
    spawn_qactuar: Any,
) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "2", "--no-access-log")
    zygote = zygote_of(proc.proc.pid)
    waiting = spares(zygote, 2)
    served = []
    for _ in range(6):
        response = httpx.get(proc.url + "/count", timeout=10)
        count, pid = response.text.split()
        assert count == "1"  # module state a request left is never seen by the next
        served.append(int(pid))
    assert served[0] in waiting  # the first request went to a child already waiting
    assert len(set(served)) == 6  # never one child for two requests
    spares(zygote, 2, served)  # replaced once the zygote is idle


def test_a_spare_killed_while_it_waits_costs_no_request(spawn_qactuar: Any) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "1", "--no-access-log")
    zygote = zygote_of(proc.proc.pid)
    (spare,) = spares(zygote, 1)
    os.kill(spare, signal.SIGKILL)
    wait_until(lambda: not alive(spare), 5, what="the spare gone")
    for _ in range(3):
        assert httpx.get(proc.url + "/", timeout=10).text == "ok"
    spares(zygote, 1)  # forked ahead again (after a pause of a second)
    assert "died" not in proc.output() and "Traceback" not in proc.output()


def test_fork_ahead_changed_live_retires_the_old_spares(spawn_qactuar: Any) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "2", "--no-access-log",
                         *ADMIN, "--admin-token", TOKEN)
    admin = Admin(admin_port(proc))
    old = zygote_of(proc.proc.pid)
    old_spares = spares(old, 2)
    assert admin.apply_config({"FORK_AHEAD": 1}).status_code == 200
    assert httpx.get(proc.url + "/", timeout=10).text == "ok"  # from the new zygote
    wait_until(lambda: not any(alive(p) for p in [old, *old_spares]), 10,
               what="the old zygote and its spares gone")
    new = zygote_of(proc.proc.pid)
    assert new != old
    spares(new, 1)


def test_a_killed_parent_takes_the_spares_along(spawn_qactuar: Any) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "2", "--no-access-log")
    zygote = zygote_of(proc.proc.pid)
    waiting = spares(zygote, 2)
    os.kill(proc.proc.pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in [zygote, *waiting]), 5,
               what="the zygote and its spares gone")


# out of descriptors (found by a cold review: each failed before its fix) -------------


def test_a_spare_channel_that_cannot_be_made_pauses_forking_ahead(monkeypatch: Any) -> None:
    ctl, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    waiting = zygote_module.Spares(2, lambda sock, ahead: os._exit(0), ctl, (), set())

    def emfile(*args: Any, **kwargs: Any) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(zygote_module.socket, "socketpair", emfile)
    try:
        waiting.fill(True)  # (it raised, and the zygote died with every child's request)
        due = waiting.wait()
        assert due is not None and due > 0  # it tries again a second later
    finally:
        ctl.close()
        other.close()


def test_fork_ahead_beyond_the_descriptor_limit_still_serves(spawn_qactuar: Any) -> None:
    # the zygote runs out of descriptors making channels: it serves with the
    # spares it could make, or none, and does not die
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "80", "--no-access-log",
                         launcher="low_fds", env={"NOFILE": "64"})
    for _ in range(3):
        assert httpx.get(proc.url + "/", timeout=10).text == "ok"
    time.sleep(1.5)
    out = proc.output()
    assert "failed" not in out and "died" not in out, out[-3000:]


def test_a_spare_channel_failing_once_costs_no_request_in_flight(spawn_qactuar: Any) -> None:
    # SEQPACKET socketpairs: 1 the control socket, 2-3 the spares' channels, 4 the
    # replacement made while a spare serves /sleep: it fails (ENFILE) once
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "2", "--no-access-log",
                         launcher="failing_seqpacket", env={"FAIL_SEQPACKET": "4"})
    spares(zygote_of(proc.proc.pid), 2)
    response = httpx.get(proc.url + "/sleep?1", timeout=10)
    assert response.text == "slept", (response.status_code, proc.output()[-2000:])


def test_fork_ahead_over_max_processes_is_refused_at_start(spawn_qactuar: Any) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--fork-ahead", "5", "--max-processes", "4",
                         wait=False)
    assert proc.wait(20) == 2
    assert "FORK_AHEAD=5" in proc.output() and "MAX_PROCESSES (4)" in proc.output()
