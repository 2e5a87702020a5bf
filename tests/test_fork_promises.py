"""README promises of the fork model that had no test: its stop, group signals,
work after the response, GATHER_PROC_STATS.

The app (``apps/promises_app.py``) marks in a directory when a request is in
its child, and waits for the test's ``release`` file: every wait here is on
such a marker, a log line or a socket, never a sleep.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import RawClient, Spawned, alive, encode_request, read_until_closed, wait_until


def marked(folder: Path, name: str) -> int:
    """Wait for the app's ``<name>-<pid>`` file; the pid of the process that wrote it."""
    found = wait_until(lambda: sorted(folder.glob(f"{name}-*[0-9]")), 10,
                       what=f"the app's {name}-<pid> marker")
    return int(found[0].name.rsplit("-", 1)[1])


def start(spawn_qactuar: Callable[..., Spawned], folder: Path, *args: str, model: str = "fork",
          **kwargs: Any) -> Spawned:
    return spawn_qactuar("promises_app:app", "--model", model, *args,
                         env={"PROMISES_DIR": str(folder)}, **kwargs)


def test_children_outliving_graceful_timeout_are_killed_and_the_parent_exits_0(
    spawn_qactuar, tmp_path
):
    """README, fork: "SIGTERM: stop accepting, let running children finish up to
    GRACEFUL_TIMEOUT, then kill the rest and exit 0"."""
    server = start(spawn_qactuar, tmp_path, "--graceful-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/hold"))  # never released
        child = marked(tmp_path, "held")
        term_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        stopped_in = time.monotonic() - term_at
        assert read_until_closed(sock, 10) == b""  # closed without a response
    assert stopped_in >= 1.0  # it had its GRACEFUL_TIMEOUT
    assert not alive(child)
    log = server.output()
    assert "Graceful timeout: closing 1 connection(s) still busy" in log
    assert log.index("SIGTERM: stopping gracefully") < log.index("Graceful timeout")


def test_a_second_sigint_stops_now(spawn_qactuar, tmp_path):
    """README, fork: "SIGINT twice: stop now" (GRACEFUL_TIMEOUT 30 s here)."""
    server = start(spawn_qactuar, tmp_path, "--graceful-timeout", "30")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/hold"))
        child = marked(tmp_path, "held")
        server.signal(signal.SIGINT)
        server.wait_for_log("SIGINT: stopping gracefully", 10)
        assert alive(child)  # the first one lets it run
        server.signal(signal.SIGINT)
        assert server.wait(10) == 0  # far sooner than GRACEFUL_TIMEOUT
        assert read_until_closed(sock, 10) == b""
    assert not alive(child)
    assert "Second SIGINT: stopping now" in server.output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_children_ignore_a_signal_to_the_whole_process_group(spawn_qactuar, tmp_path, signum):
    """README, fork: "Children ignore SIGINT and SIGTERM sent to the whole process
    group (Ctrl-C, a service manager): the parent decides when they go"."""
    server = start(spawn_qactuar, tmp_path, "--graceful-timeout", "20", launcher="own_group")
    assert os.getpgid(server.proc.pid) == server.proc.pid
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/hold"))
        child = marked(tmp_path, "held")
        assert os.getpgid(child) == server.proc.pid
        os.killpg(server.proc.pid, signum)  # the parent and its child at once
        name = signal.Signals(signum).name
        server.wait_for_log(f"{name}: stopping gracefully", 10)
        (tmp_path / "release").touch()
        response = RawClient.over(sock, 20).response()
    assert (response.status, response.body) == (200, f"released {child}".encode())
    assert server.wait(15) == 0
    assert "Graceful timeout" not in server.output()


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_work_after_the_response_completes_in_the_child(spawn_qactuar, tmp_path, connection):
    """README, fork: "A child keeps running until its application returns, so work
    an app does after its response (Starlette background tasks) completes"."""
    server = start(spawn_qactuar, tmp_path)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        conn = RawClient.over(sock, 20)
        conn.send(f"GET /after HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n"
                     .encode())
        response = conn.response()
        assert response.status == 200
        child = int(response.body.split()[1])
        assert child != server.proc.pid
        if connection == "close":
            # the client sees the end while the app goes on
            assert conn.read_to_close(10) == b""
        (tmp_path / "release").touch()  # only now, with the response in hand
        wait_until(lambda: (tmp_path / f"after-{child}").exists(), 10,
                   what="the child's work after its response")
    assert (tmp_path / f"after-{child}").read_text() == "done"
    server.signal(signal.SIGTERM)
    assert server.wait(15) == 0  # every child reaped and its end logged by now
    assert "exited" not in server.output() and "killed" not in server.output()


def child_figures(log: str, pid: int) -> dict[str, float]:
    """The GATHER_PROC_STATS line of child ``pid``: wall, user, sys (ms), rss (KiB)."""
    found = re.search(
        rf"child {pid}: ([\d.]+) ms wall, ([\d.]+) ms user, ([\d.]+) ms sys, (\d+) KiB peak RSS",
        log,
    )
    assert found, log
    wall, user, system, rss = found.groups()
    return {"wall": float(wall), "user": float(user), "sys": float(system), "rss": int(rss)}


def test_proc_stats_show_each_childs_real_cpu_wall_time_and_peak_rss(spawn_qactuar, tmp_path):
    """README, fork: "GATHER_PROC_STATS: every child's wall time, user and system CPU
    and peak RSS (from the kernel's accounting of the reaped child) are ... logged on
    qt_server at debug level"."""
    server = start(spawn_qactuar, tmp_path, "--gather-proc-stats", "--log-level", "debug")
    with httpx.Client(base_url=server.url, timeout=20) as client:
        light = int(client.get("/pid").text)
        busy = int(client.get("/cpu?0.4").text)  # 0.4 s of CPU time
        big = int(client.get("/alloc?96").text)  # 96 MiB touched
    log = wait_until(lambda: all(f"child {pid}:" in server.output() for pid in (light, busy, big))
                     and server.output(), 10, what="a GATHER_PROC_STATS line for each child")
    light_f, busy_f, big_f = (child_figures(log, pid) for pid in (light, busy, big))
    # CPU: what the busy child burnt, and the light one did not
    assert busy_f["user"] + busy_f["sys"] >= 390, busy_f
    assert busy_f["user"] > 2 * busy_f["sys"], busy_f  # a pure-Python loop
    # (the parent starts the clock once fork() returns: the child may run first)
    assert busy_f["wall"] >= busy_f["user"] + busy_f["sys"] - 50, busy_f
    assert light_f["user"] + light_f["sys"] < 200, light_f
    # peak RSS: a forked child starts with the parent's pages (tens of MiB);
    # the big one touched 96 MiB more
    assert 5 * 1024 < light_f["rss"] < 1024 * 1024, light_f
    assert big_f["rss"] - light_f["rss"] >= 90 * 1024, (big_f, light_f)
    # one line per child, from the parent
    assert len(re.findall(r"KiB peak RSS", log)) == 3


@pytest.mark.parametrize("model", ["async", "fork"])
def test_a_response_finished_during_the_stop_says_connection_close(
    spawn_qactuar, tmp_path, model
):
    """README, async: "Every model stops the same way: responses finished during the
    stop say Connection: close"."""
    server = start(spawn_qactuar, tmp_path, "--graceful-timeout", "20", model=model)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/hold"))
        marked(tmp_path, "held")
        server.signal(signal.SIGTERM)
        server.wait_for_log("SIGTERM: stopping gracefully", 10)
        (tmp_path / "release").touch()
        response = RawClient.over(sock, 20).response()
        assert response.status == 200
        assert response.text_header("connection") == "close"
    assert server.wait(15) == 0
