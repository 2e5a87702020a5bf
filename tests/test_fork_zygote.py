"""The fork model's zygote and relay under trouble: bursts, a slow, stopped or dead
zygote, a parent out of descriptors, a stop, a process the app forked.

A zygote stopped with SIGSTOP stands for one that is slow (busy forking a
burst). Each of these tests failed before its fix (found by a cold review).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import os
import select
import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from support import alive, children_of, fork_children, wait_until
from support.admin import ADMIN, TOKEN, Admin, admin_port

from qactuar.models.relay import _plain
from qactuar.models.zygote import ZygoteLink, start_zygote

APP = "zygote_app:app"


def zygote_of(parent: int) -> int:
    (zygote,) = wait_until(lambda: children_of(parent) if len(children_of(parent)) == 1 else None,
                           10, what="one zygote")
    return zygote


def get(url: str, out: dict[str, Any], key: str, timeout: float = 30) -> None:
    began = time.monotonic()
    try:
        out[key] = (httpx.get(url, timeout=timeout).status_code, time.monotonic() - began)
    except Exception as exc:
        out[key] = (type(exc).__name__, time.monotonic() - began)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# bursts: more spawn requests than the control socket holds ----------------------------


def test_a_slow_zygote_is_not_given_up_for_dead(spawn_qactuar: Any) -> None:
    # ~280 queued requests fill the control socket; the rest wait in the
    # parent, which took a full socket for a dead zygote and forked another
    proc = spawn_qactuar(APP, "--model", "fork", "--max-processes", "400", "--no-access-log")
    parent = proc.proc.pid
    zygote = zygote_of(parent)
    os.kill(zygote, signal.SIGSTOP)
    conns = []
    try:
        for _ in range(320):
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            conns.append(sock)
        time.sleep(1)
    finally:
        os.kill(zygote, signal.SIGCONT)
    try:
        for sock in conns:
            data = read_all(sock)
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
    finally:
        for sock in conns:
            sock.close()
    assert "died" not in proc.output()
    assert children_of(parent) == [zygote]


# the parent or the zygote out of descriptors ---------------------------------------------


def test_a_child_whose_pidfd_the_parent_could_not_take_does_not_leak_its_slot(
    spawn_qactuar: Any,
) -> None:
    # the parent at its descriptor limit as the zygote's "forked" arrives: the
    # kernel drops the pidfd; the child is then killed through the zygote, and
    # its slot (the only one) serves the next request
    proc = spawn_qactuar(APP, "--model", "fork", "--max-processes", "1",
                         launcher="low_fds", env={"NOFILE": "48"})
    parent = proc.proc.pid
    zygote = zygote_of(parent)
    os.kill(zygote, signal.SIGSTOP)
    first = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
    idle = []
    try:
        first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)  # the parent has asked the (stopped) zygote
        for _ in range(80):  # the parent's descriptor table fills
            idle.append(socket.create_connection(("127.0.0.1", proc.port), timeout=10))
        time.sleep(0.5)
        os.kill(zygote, signal.SIGCONT)
        time.sleep(0.5)
    finally:
        os.kill(zygote, signal.SIGCONT)
        for sock in idle:
            sock.close()
    first.close()
    assert httpx.get(proc.url + "/", timeout=10).status_code == 200
    assert "IndexError" not in proc.output()


@pytest.mark.timeout(30)
def test_a_spawn_request_whose_descriptor_was_dropped_is_answered() -> None:
    # the zygote at its descriptor limit gets the request without its fd
    pid, ctl = start_zygote([], lambda sock, ahead: os._exit(0), os.fork)
    try:
        ctl.send(marshal.dumps((7,)))
        ready, _, _ = select.select([ctl], [], [], 3)
        answer = marshal.loads(ctl.recv(256)) if ready else None
        assert answer is not None and answer[:2] == ("failed", 7), answer
    finally:
        ctl.shutdown(socket.SHUT_WR)
        os.waitpid(pid, 0)
        ctl.close()


# deadlines and stops --------------------------------------------------------------------


def test_request_timeout_applies_while_the_zygote_has_not_forked_the_child(
    spawn_qactuar: Any,
) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--request-timeout", "1",
                         "--check-process-interval", "0.1")
    zygote = zygote_of(proc.proc.pid)
    os.kill(zygote, signal.SIGSTOP)
    began = time.monotonic()
    try:
        status = httpx.get(proc.url + "/", timeout=6).status_code
    finally:
        os.kill(zygote, signal.SIGCONT)
    assert status == 504 and time.monotonic() - began < 3


def test_a_stop_kills_a_child_the_zygote_reports_forked_late(spawn_qactuar: Any) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", env={"QACTUAR_GRACEFUL_TIMEOUT": "1"})
    parent = proc.proc.pid
    zygote = zygote_of(parent)
    os.kill(zygote, signal.SIGSTOP)  # the request's child is "spawning"
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
    left: list[int] = []
    try:
        sock.sendall(b"GET /ignore?40 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        os.kill(parent, signal.SIGTERM)
        time.sleep(2)  # past the core's graceful stop
        os.kill(zygote, signal.SIGCONT)
        proc.proc.wait(timeout=20)
        time.sleep(0.2)
        left = [pid for pid in [zygote, *children_of(zygote)] if alive(pid)]
        assert not left, f"outlived the parent: {left}"
    finally:
        sock.close()
        os.kill(zygote, signal.SIGCONT) if alive(zygote) else None
        for pid in left:
            os.kill(pid, signal.SIGKILL)


def test_a_request_waiting_when_the_zygote_dies_in_a_stop_is_answered(
    spawn_qactuar: Any,
) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--max-processes", "1",
                         env={"QACTUAR_GRACEFUL_TIMEOUT": "8"})
    parent = proc.proc.pid
    zygote = zygote_of(parent)
    out: dict[str, Any] = {}
    first = threading.Thread(target=get, args=(proc.url + "/sleep?2", out, "first"))
    first.start()
    wait_until(lambda: fork_children(parent), 10, what="a request child")
    waiting = threading.Thread(target=get, args=(proc.url + "/", out, "waiting"))
    waiting.start()
    time.sleep(0.3)
    os.kill(parent, signal.SIGTERM)
    time.sleep(0.3)
    os.kill(zygote, signal.SIGKILL)
    first.join(30)
    waiting.join(30)
    assert out["waiting"][0] in (200, 503) and out["waiting"][1] < 4, out


def test_a_zygote_killed_mid_request_costs_that_request_only(spawn_qactuar: Any) -> None:
    proc = spawn_qactuar(APP, "--model", "fork", "--max-processes", "1")
    parent = proc.proc.pid
    zygote = zygote_of(parent)
    out: dict[str, Any] = {}
    first = threading.Thread(target=get, args=(proc.url + "/sleep?5", out, "first", 15))
    first.start()
    (child,) = wait_until(lambda: fork_children(parent), 10, what="a request child")
    waiting = threading.Thread(target=get, args=(proc.url + "/", out, "waiting", 15))
    waiting.start()
    time.sleep(0.3)
    os.kill(zygote, signal.SIGKILL)
    first.join(20)
    waiting.join(20)
    assert out["first"][0] == 502 and out["first"][1] < 4, out
    assert out["waiting"][0] == 200, out
    wait_until(lambda: not alive(child), 5, what="the orphaned child killed")
    assert len(children_of(parent)) == 1  # a new zygote
    assert "the zygote" in proc.output() and "died" in proc.output()


# what the relay carries ---------------------------------------------------------------


def test_plain_keeps_tuples() -> None:
    assert _plain((("127.0.0.1", 1), [(b"host", b"x")])) == (("127.0.0.1", 1), [(b"host", b"x")])


def test_a_childs_scope_has_the_types_of_every_model(spawn_qactuar: Any) -> None:
    # the scope's read-only extension dicts sent everything through the slow
    # path, which made every tuple a list: a header pair was no longer found
    proc = spawn_qactuar(APP, "--model", "fork")
    seen = json.loads(httpx.get(proc.url + "/scope", timeout=10).text)
    assert seen == {"client": "tuple", "server": "tuple", "header": "tuple",
                    "host_in_headers": True, "tls": False}


@pytest.mark.parametrize(("path", "status", "args"), [
    ("/forkcrash?3.5", 502, ()),
    ("/forkhang?3.5", 504, ("--request-timeout", "1", "--check-process-interval", "0.1")),
])
def test_a_lost_child_is_answered_at_once_though_a_process_it_forked_lives_on(
    spawn_qactuar: Any, path: str, status: int, args: tuple[str, ...],
) -> None:
    # a process the app forked (multiprocessing, a daemon) holds the child's
    # end of the socketpair open: the relay must not wait for its end
    proc = spawn_qactuar(APP, "--model", "fork", *args)
    began = time.monotonic()
    assert httpx.get(proc.url + path, timeout=30).status_code == status
    assert time.monotonic() - began < 3
    time.sleep(max(0.0, began + 4 - time.monotonic()))  # (the app's process is gone by now)


def test_the_zygote_is_forked_before_the_admin_app_is_imported(spawn_qactuar: Any) -> None:
    # with the admin app in the zygote (1.8 MiB), every fork and exit cost 8%
    # more; a child holds only what the zygote did
    proc = spawn_qactuar(APP, "--model", "fork", *ADMIN, "--admin-token", TOKEN)
    admin = Admin(admin_port(proc))
    held = httpx.get(proc.url + "/imported", timeout=10).text.split()
    assert "qactuar.admin.app" not in held and "qactuar.admin.backends" not in held, held
    processes = admin.status()["processes"]  # served, by the parent
    assert [p["role"] for p in processes][:2] == ["parent", "zygote"]


@pytest.mark.timeout(30)
def test_a_kill_sent_after_the_zygote_is_retired_still_kills() -> None:
    # a child with no pidfd is killed through its zygote; once retired (a
    # config or apps change) the zygote's control socket was shut, and the
    # kill was lost: the child ran on past REQUEST_TIMEOUT (found by review)
    def sleeper(sock: socket.socket, ahead: bool) -> Any:
        time.sleep(30)
        os._exit(0)

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        forked: asyncio.Future[tuple[int, int]] = loop.create_future()
        pid, ctl = start_zygote([], sleeper, os.fork)
        link = ZygoteLink(pid, ctl, lambda token, child, pidfd: forked.set_result((child, pidfd)),
                          lambda *a: None, lambda *a: None, lambda link: None)
        ours, theirs = socket.socketpair()
        assert link.spawn(1, theirs)
        child, pidfd = await asyncio.wait_for(forked, 5)
        os.close(pidfd)  # (as if it never came)
        link.retire()
        link.kill(child)
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        survived = alive(child)
        if survived:
            os.kill(child, signal.SIGKILL)
        ours.close()
        await asyncio.wait_for(link.gone, 10)  # it left once its last child was reported
        return survived

    assert not asyncio.run(main())


def socket_count(pid: int) -> int:
    found = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            found += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
    return found


def test_a_relay_ended_early_closes_its_end_though_the_parent_had_more_to_send(
    spawn_qactuar: Any,
) -> None:
    # the child crashes without reading a large body while a process it forked
    # holds its end: a graceful close waited for ever for the unsent body to
    # drain, keeping the parent's end (and its buffer) open (found by review)
    proc = spawn_qactuar(APP, "--model", "fork", "--no-access-log")
    parent = proc.proc.pid
    assert httpx.get(proc.url + "/", timeout=10).status_code == 200
    time.sleep(0.3)
    before = socket_count(parent)
    began = time.monotonic()
    answer = httpx.post(proc.url + "/forkcrash?6", content=b"x" * (16 * 1024 * 1024),
                        timeout=20, headers={"connection": "close"})
    assert answer.status_code == 502 and time.monotonic() - began < 5
    wait_until(lambda: socket_count(parent) <= before, 3, what="the relay's end closed")
    time.sleep(max(0.0, began + 6.5 - time.monotonic()))  # (the app's process is gone)
