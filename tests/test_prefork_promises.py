"""README promises of the prefork model that had no test: SIGQUIT, the kill
GRACEFUL_TIMEOUT + 5 s after SIGTERM, WORKER_TIMEOUT bounding start-up, the
master/worker log split, SIGHUP keeping command-line values.

The apps mark in a directory when a request is in its worker (or start-up
hangs) and wait for the test: every wait is on such a marker, a log line or
a socket. Lower bounds on time are asserted where the promise is a duration;
upper bounds only far below the alternative (GRACEFUL_TIMEOUT 30 s).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import Spawned, alive, encode_request, read_until_closed, wait_until

APP = "promises_app:app"


def serving(server: Spawned) -> list[int]:
    """The workers that logged ``Worker <pid> serving``, in order."""
    return [int(pid) for pid in re.findall(r"Worker (\d+) serving", server.output())]


def prefork(spawn_qactuar: Callable[..., Spawned], folder: Path, *args: str) -> Spawned:
    """A prefork master of one worker serving promises_app, once that worker serves."""
    server = spawn_qactuar(APP, "--model", "prefork", "--workers", "1", *args,
                           env={"PROMISES_DIR": str(folder)})
    wait_until(lambda: serving(server), 10, what="'Worker <pid> serving' in the output")
    return server


def marked(folder: Path, name: str) -> int:
    """Wait for the app's ``<name>-<pid>`` file; the pid of the process that wrote it."""
    found = wait_until(lambda: sorted(folder.glob(f"{name}-*[0-9]")), 10,
                       what=f"the app's {name}-<pid> marker")
    return int(found[0].name.rsplit("-", 1)[1])


# SIGQUIT and the kill after a graceful stop ---------------------------------------------


def test_sigquit_closes_the_workers_connections_at_once(spawn_qactuar, tmp_path):
    """README, prefork signals: "SIGQUIT | stop now: workers close their connections
    at once" (GRACEFUL_TIMEOUT 30 s here)."""
    server = prefork(spawn_qactuar, tmp_path, "--graceful-timeout", "30")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/hold"))
        worker = marked(tmp_path, "held")
        server.signal(signal.SIGQUIT)
        assert read_until_closed(sock, 10) == b""  # closed without a response
        # by the worker itself: the master logs before it kills
        assert "killing it" not in server.output()
        assert server.wait(10) == 0
    assert not alive(worker)
    assert "SIGQUIT: stopping now" in server.output()


def test_sigquit_kills_a_worker_still_running_after_a_second(spawn_qactuar, tmp_path):
    """README, prefork signals: "SIGQUIT | ... any worker still running after a
    second is killed" (its event loop is blocked: it cannot act on SIGQUIT)."""
    server = prefork(spawn_qactuar, tmp_path, "--graceful-timeout", "30", "--worker-timeout", "0")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/block"))
        worker = marked(tmp_path, "blocked")
        quit_at = time.monotonic()
        server.signal(signal.SIGQUIT)
        assert server.wait(10) == 0
        stopped_in = time.monotonic() - quit_at
        assert read_until_closed(sock, 10) == b""
    assert stopped_in >= 1.0
    assert not alive(worker)
    assert f"Worker {worker} still running; killing it" in server.output()


def test_a_worker_ignoring_sigterm_is_killed_5s_after_graceful_timeout(spawn_qactuar, tmp_path):
    """README, prefork settings: "GRACEFUL_TIMEOUT ... The master kills a worker
    still running 5 s after that"."""
    server = prefork(spawn_qactuar, tmp_path, "--graceful-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(encode_request("/ignore-term"))
        worker = marked(tmp_path, "ignoring")
        term_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        stopped_in = time.monotonic() - term_at
        assert read_until_closed(sock, 10) == b""
    assert stopped_in >= 0.5 + 5
    assert not alive(worker)
    assert f"Worker {worker} still running; killing it" in server.output()


# WORKER_TIMEOUT bounds a worker's start-up ------------------------------------------------


@pytest.mark.parametrize("phase", ["import", "startup"])
def test_a_worker_whose_start_up_hangs_is_killed_and_replaced(spawn_qactuar, tmp_path, phase):
    """README, prefork settings: "WORKER_TIMEOUT ... Also bounds a worker's start-up
    (imports with PRELOAD off, lifespan startup)"; a worker that fails at start-up
    while none serves is retried with a short back-off."""
    flag, notes = tmp_path / "hang", tmp_path / "notes"
    flag.touch()
    server = spawn_qactuar(
        "hanging_start:app", "--model", "prefork", "--workers", "1", "--no-preload",
        "--worker-timeout", "2",
        env={f"HANG_{phase.upper()}": str(flag), "HANG_NOTES": str(notes)},
    )
    hung = int(wait_until(lambda: notes.exists() and notes.read_text(), 10,
                          what="the hanging worker's note").split()[1])
    killed = wait_until(
        lambda: re.search(rf"Worker {hung}: still starting after ([\d.]+)s, WORKER_TIMEOUT 2s",
                          server.output()),
        10, what=f"worker {hung} killed for WORKER_TIMEOUT",
    )
    flag.unlink()  # the replacement starts as it should
    assert float(killed.group(1)) > 2
    replacement = wait_until(lambda: [p for p in serving(server) if p != hung], 10,
                             what="a replacement worker serving")
    assert httpx.get(server.url + "/", timeout=5).text == str(replacement[0])
    assert not alive(hung)
    assert server.proc.poll() is None


def test_workers_that_never_finish_starting_stop_the_master_with_status_3(
    spawn_qactuar, tmp_path
):
    """README, prefork: "A worker that crashes before it serves for any other reason
    is retried with a short back-off, and after 5 such failures in a row the master
    gives up the same way" (exit status 3); here WORKER_TIMEOUT ends each start-up."""
    flag, notes = tmp_path / "hang", tmp_path / "notes"
    flag.touch()
    server = spawn_qactuar(
        "hanging_start:app", "--model", "prefork", "--workers", "1", "--worker-timeout", "0.2",
        env={"HANG_STARTUP": str(flag), "HANG_NOTES": str(notes)}, wait=False,
    )
    assert server.wait(20) == 3
    log = server.output()
    assert len(re.findall(r"Started worker \d+", log)) == 5, log
    assert len(re.findall(r"Worker \d+: still starting after", log)) == 5, log
    assert re.search(r"Workers cannot start: worker \d+ still starting after", log), log


# who logs what -------------------------------------------------------------------------

#: LOGS that name each line's logger and process.
NAMED_LOGS = {
    "version": 1,
    "formatters": {"named": {"format": "{name} {process} {message}", "style": "{"}},
    "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "named",
                         "stream": "ext://sys.stdout"}},
    "loggers": {name: {"handlers": ["out"], "level": "DEBUG"}
                for name in ("qt_server", "qt_child", "qt_access", "qt_exception")},
}


def test_the_master_logs_on_qt_server_and_the_workers_on_qt_child(spawn_qactuar, tmp_path):
    """README, prefork: "The master speaks on qt_server: workers started, stopped, died,
    killed, reloads and signals. Workers speak on qt_child: serving, asking for a
    replacement. The core's own informational lines (Listening on ...) are logged
    once, by the master." (Logging: qt_access, one line per request.)"""
    config = tmp_path / "logs.json"
    config.write_text(json.dumps({"LOGS": NAMED_LOGS}))
    server = prefork(spawn_qactuar, tmp_path, "--config", str(config), "--max-requests", "1")
    (first,) = serving(server)
    assert httpx.get(server.url + "/", timeout=5).text == str(first)
    # its replacement serves, then it is stopped
    server.wait_for_log(f"Worker {first} stopped after 1 requests", 10)
    (second,) = [pid for pid in serving(server) if pid != first]
    server.signal(signal.SIGTERM)
    assert server.wait(15) == 0
    master = server.proc.pid
    lines = [line.split(" ", 2) for line in server.output().splitlines()]
    said = {(name, int(pid), text) for name, pid, text in lines if pid.isdigit()}
    port = server.port
    for pid, text in [
        (master, f"Listening on http://127.0.0.1:{port}"),
        (master, f"Master {master} keeps 1 workers"),
        (master, f"Started worker {first}"),
        (master, f"Started worker {second}"),
        (master, f"Stopping worker {first} (replaced: MAX_REQUESTS)"),
        (master, f"Worker {first} stopped after 1 requests"),
        (master, "SIGTERM: stopping gracefully"),
        (master, f"Worker {second} stopped after 0 requests"),
    ]:
        assert ("qt_server", pid, text) in said, (text, server.output())
    for pid, text in [
        (first, f"Worker {first} serving"),
        (first, f"Worker {first} served 1 requests (MAX_REQUESTS): asking for a replacement"),
        (second, f"Worker {second} serving"),
    ]:
        assert ("qt_child", pid, text) in said, (text, server.output())
    access = [(name, pid) for name, pid, text in said if '"GET / HTTP/1.1" 200' in text]
    assert access == [("qt_access", first)]
    # nothing else crosses: the master never speaks on qt_child, no worker on qt_server
    assert {pid for name, pid, _ in said if name == "qt_server"} == {master}
    assert {pid for name, pid, _ in said if name == "qt_child"} == {first, second}
    assert sum("Listening on" in text for _, _, text in said) == 1


# SIGHUP -------------------------------------------------------------------------------


def test_sighup_keeps_command_line_values_and_names_the_keys_it_cannot_change(
    spawn_qactuar, tmp_path
):
    """README, prefork signals: "SIGHUP | re-read the config file it started with
    (command-line values still win)"; caveats: "HOST, PORT, UDS, BIND, FD, UDS_MODE,
    BACKLOG, REUSE_PORT, PRELOAD and MODEL keep their values until the next start,
    and a warning says so"."""
    config = tmp_path / "qactuar.json"
    config.write_text(json.dumps({"HEADERS": ["X-Set-By: file"]}))
    server = prefork(spawn_qactuar, tmp_path, "--config", str(config),
                     "--header", "X-Set-By: command line")
    (old,) = serving(server)
    before = httpx.get(server.url + "/", timeout=5)
    assert (before.headers["x-set-by"], before.headers["server"]) == ("command line", "qactuar")
    config.write_text(json.dumps({"HEADERS": ["X-Set-By: file, again"], "SERVER_HEADER": False,
                                  "BACKLOG": 16, "PRELOAD": False}))
    server.signal(signal.SIGHUP)
    server.wait_for_log(f"Worker {old} stopped after", 10)
    (new,) = [pid for pid in serving(server) if pid != old]
    after = httpx.get(server.url + "/", timeout=5)
    assert after.text == str(new)
    assert after.headers["x-set-by"] == "command line"  # the command line still wins
    assert "server" not in after.headers  # the file's change took effect
    log = server.output()
    assert "SIGHUP: BACKLOG changed to 16; it takes effect at the next start" in log
    assert "SIGHUP: PRELOAD changed to False; it takes effect at the next start" in log
    assert "HEADERS changed" not in log and "SERVER_HEADER changed" not in log
