"""The fork model on every core (issue 14): ``MODEL fork`` with ``WORKERS``.

The prefork master keeps WORKERS fork-model parents; each relays every
request to a fresh child of its own zygote. Seen from outside: the process
tree (master, parents, zygotes, children), what each request's child
reports of itself, and the master's supervision (recycling, SIGHUP, a
killed parent, a stop) with the fork model's answers (502, 504) kept.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from support import Load, alive, children_of, fd_targets, fork_children, wait_until
from support.admin import ADMIN, TOKEN, Admin, admin_port

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")

APP = "zygote_app:app"
POOL = ("--model", "fork", "--no-access-log")


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def start_pool(spawn: Any, workers: int, *args: str) -> Any:
    proc = spawn(APP, *POOL, "--workers", str(workers), *args)
    proc.wait_for_log("serving", count=workers)
    return proc


def parents(master: int, count: int) -> list[int]:
    """The master's fork parents, once there are ``count`` each with its zygote."""

    def ready() -> list[int] | None:
        found = children_of(master)
        if len(found) == count and all(len(children_of(p)) == 1 for p in found):
            return found
        return None

    return wait_until(ready, 20, what=f"{count} fork parents, each with a zygote")


def served_by(url: str) -> tuple[int, int, int]:
    """(child, zygote, fork parent) of one request, on a connection of its own."""
    response = httpx.get(url + "/pids", headers={"connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    child, zygote = map(int, response.text.split())
    return child, zygote, parent_of(zygote)


def in_thread(url: str, out: dict[str, Any], timeout: float = 60) -> threading.Thread:
    def get() -> None:
        try:
            out["status"] = httpx.get(url, timeout=timeout).status_code
        except httpx.HTTPError as exc:
            out["status"] = type(exc).__name__

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    return thread


def gone(pids: list[int], within: float = 10) -> None:
    wait_until(lambda: not any(alive(pid) for pid in pids), within,
               what=f"processes {pids} gone")


def test_each_request_runs_in_a_fresh_child_of_one_of_the_masters_fork_parents(
    spawn_qactuar: Any,
) -> None:
    # REUSE_PORT: a lane per parent, so the kernel spreads the connections over both
    proc = start_pool(spawn_qactuar, 2, "--reuse-port")
    master = proc.proc.pid
    pool = parents(master, 2)
    seen = [served_by(proc.url) for _ in range(30)]
    children = [child for child, _, _ in seen]
    assert len(set(children)) == 30  # never one child for two requests
    assert {parent for _, _, parent in seen} == set(pool)  # both parents served
    for _, zygote, parent in seen:
        assert children_of(parent) == [zygote]  # each parent forks from its own zygote
    gone(children)  # each child exits after its request


def test_a_crash_or_a_hang_is_answered_by_the_parent_and_no_parent_is_lost(
    spawn_qactuar: Any,
) -> None:
    proc = start_pool(spawn_qactuar, 1, "--request-timeout", "1")
    pool = parents(proc.proc.pid, 1)
    crashed = httpx.get(proc.url + "/forkcrash?0", timeout=10)
    assert crashed.status_code == 502
    began = time.monotonic()
    hung = httpx.get(proc.url + "/forkhang?0", timeout=15)
    assert hung.status_code == 504
    assert time.monotonic() - began < 8
    assert httpx.get(proc.url + "/", timeout=10).text == "ok"
    assert children_of(proc.proc.pid) == pool  # the parent answered both and serves on


def test_max_requests_recycles_a_fork_parent_with_its_zygote_and_no_request_fails(
    spawn_qactuar: Any,
) -> None:
    proc = start_pool(spawn_qactuar, 2, "--max-requests", "15")
    master = proc.proc.pid
    first = parents(master, 2)
    zygotes = [z for p in first for z in children_of(p)]
    with Load([proc.url + "/"], threads=2, fresh=1, warm=80, limit=30) as load:
        wait_until(lambda: not set(children_of(master)) & set(first), 20,
                   what="both first parents replaced")
    assert load.failed == []
    gone(first + zygotes)  # the old parents' zygotes left with them
    parents(master, 2)


def test_sighup_replaces_the_fork_parents_without_a_failed_request(spawn_qactuar: Any) -> None:
    proc = start_pool(spawn_qactuar, 2)
    master = proc.proc.pid
    first = parents(master, 2)
    zygotes = [z for p in first for z in children_of(p)]
    with Load([proc.url + "/", proc.url + "/sleep?0.05"], threads=2, fresh=1) as load:
        os.kill(master, signal.SIGHUP)
        wait_until(lambda: not set(children_of(master)) & set(first), 20,
                   what="the parents replaced")
        time.sleep(0.5)
    assert load.failed == []
    gone(first + zygotes)
    assert len(parents(master, 2)) == 2


@pytest.mark.parametrize("workers", [0, 1], ids=["one parent", "under a master"])
def test_a_killed_fork_parent_takes_its_hanging_children_and_zygote_along(
    spawn_qactuar: Any, workers: int,
) -> None:
    # REQUEST_TIMEOUT off: only the parent could have stopped the child. Its
    # zygote kills the children left once the parent is gone (before: they
    # hung on, the zygote waiting for them)
    proc = spawn_qactuar(APP, *POOL, "--workers", str(workers), "--request-timeout", "0")
    if workers:
        proc.wait_for_log("serving")
        (parent,) = parents(proc.proc.pid, 1)
    else:
        parent = proc.proc.pid
    (zygote,) = wait_until(lambda: children_of(parent) or None, 10, what="the zygote")
    out: dict[str, Any] = {}
    thread = in_thread(proc.url + "/ignore?60", out)
    (child,) = wait_until(lambda: fork_children(parent) or None, 10, what="the child")
    # news the parent never reads: a second child's exit, told while the
    # parent is stopped (the zygote's next read then fails: ECONNRESET)
    in_thread(proc.url + "/ignore?60", {})
    (second,) = wait_until(lambda: set(fork_children(parent)) - {child} or None, 10,
                           what="a second child")
    os.kill(parent, signal.SIGSTOP)
    os.kill(second, signal.SIGKILL)
    wait_until(lambda: fork_children(parent) == [child], 10, what="the second child reaped")
    time.sleep(0.1)
    os.kill(parent, signal.SIGKILL)
    gone([child, zygote], within=5)
    thread.join(10)
    assert out["status"] in ("RemoteProtocolError", "ReadError")  # the connection died
    if workers:  # the master replaced the parent, which serves
        replaced = wait_until(lambda: [p for p in children_of(proc.proc.pid) if p != parent]
                              or None, 20, what="a new parent")
        assert replaced
        wait_until(lambda: httpx.get(proc.url + "/", timeout=5).text == "ok", 20,
                   what="served again")


def test_sigterm_drains_each_parent_and_leaves_no_process(spawn_qactuar: Any) -> None:
    proc = start_pool(spawn_qactuar, 2)
    master = proc.proc.pid
    pool = parents(master, 2)
    tree = pool + [z for p in pool for z in children_of(p)]
    out: dict[str, Any] = {}
    thread = in_thread(proc.url + "/sleep?1", out)
    wait_until(lambda: any(fork_children(p) for p in pool), 10, what="the request in a child")
    os.kill(master, signal.SIGTERM)
    assert proc.wait(20) == 0
    thread.join(10)
    assert out["status"] == 200  # the request in flight was finished
    assert not [pid for pid in tree if alive(pid)]


def test_the_admin_socket_changes_a_fork_key_by_replacing_the_parents(
    spawn_qactuar: Any,
) -> None:
    proc = start_pool(spawn_qactuar, 1, *ADMIN, "--admin-token", TOKEN,
                      "--request-timeout", "30")
    admin = Admin(admin_port(proc))
    status = admin.status()
    assert status["model"] == "fork"
    assert [p["role"] for p in status["processes"]] == ["master", "worker"]
    first = parents(proc.proc.pid, 1)
    for _ in range(5):
        assert httpx.get(proc.url + "/", timeout=10).text == "ok"
    # the parents' figures reach the master (each heartbeat)
    wait_until(lambda: admin.status()["totals"]["requests"] >= 5, 10, what="5 requests counted")
    applied = admin.apply_config({"REQUEST_TIMEOUT": 1})
    assert applied.status_code == 200, applied.text
    wait_until(lambda: children_of(proc.proc.pid) != first and len(children_of(proc.proc.pid)) == 1,
               20, what="the parent replaced")
    assert httpx.get(proc.url + "/forkhang?0", timeout=15).status_code == 504
    refused = admin.apply_config({"PORT": 1})
    assert refused.status_code == 409


def test_each_fork_parent_serves_tls_and_answers_a_crash_with_502(
    spawn_qactuar: Any, tmp_path: Any,
) -> None:
    from tlscerts import Certs, client, serve

    certs = Certs(tmp_path)
    server = serve(spawn_qactuar, certs, "fork", "--workers", "2", "--reuse-port",
                   "--no-access-log")
    server.wait_for_log("serving", count=2)
    pids = set()
    with client(certs, server) as http:
        assert http.get("/segv").status_code == 502
        for _ in range(6):
            response = http.get("/pid")
            assert response.status_code == 200
            pids.add(response.text)
    assert len(pids) == 6  # a fresh child each time, over one TLS connection


def _shared_kinds(pid: int) -> set[str]:
    """The sockets and pipes ``pid`` holds (their inodes)."""
    return {target for target in fd_targets(pid) if target.startswith(("socket:", "pipe:"))}


def test_a_child_holds_none_of_the_masters_sockets_or_pipes(spawn_qactuar: Any) -> None:
    # the master's event loop (its self-pipe), its wake-up pipe and its
    # listening socket stay out of every zygote and child
    proc = start_pool(spawn_qactuar, 1, "--request-timeout", "0")
    (parent,) = parents(proc.proc.pid, 1)
    out: dict[str, Any] = {}
    thread = in_thread(proc.url + "/sleep?1", out)
    (child,) = wait_until(lambda: fork_children(parent) or None, 10, what="the child")
    (zygote,) = children_of(parent)
    master = _shared_kinds(proc.proc.pid)
    assert master, "the master holds sockets and pipes"
    assert not master & _shared_kinds(child)
    assert not master & _shared_kinds(zygote)
    thread.join(10)
    assert out["status"] == 200


def test_workers_set_to_0_on_the_fly_leaves_one_fork_parent(spawn_qactuar: Any) -> None:
    # 0 means one parent and no master at start; later the master stays, with
    # one parent (not one per CPU, as prefork's 0 means)
    proc = start_pool(spawn_qactuar, 3, *ADMIN, "--admin-token", TOKEN)
    admin = Admin(admin_port(proc))
    parents(proc.proc.pid, 3)
    assert admin.apply_config({"WORKERS": 0}).status_code == 200
    parents(proc.proc.pid, 1)
    assert httpx.get(proc.url + "/", timeout=10).text == "ok"
