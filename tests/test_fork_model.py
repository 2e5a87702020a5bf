"""The fork model over real sockets: a fresh child per request, keep-alive held by the parent."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest
from support import (
    RawClient,
    calls_with_peak_children,
    encode_request,
    fork_children,
    read_until_closed,
    refuses,
    request_as_the_stop_begins,
    rss_kib,
    wait_until,
)
from support.stops import STOP_LINE

FORK = ("forky:app", "--model", "fork")


def no_children(proc) -> None:
    """Until the server's children are all gone (none left behind, no zombie)."""
    wait_until(lambda: not fork_children(proc.proc.pid), 10,
               what=f"no child of {proc.proc.pid} left")


def test_each_keep_alive_request_gets_a_new_child(spawn_qactuar):
    proc = spawn_qactuar(*FORK)
    with RawClient(proc.port) as conn:
        sock = conn.sock
        local = sock.getsockname()
        pids = []
        for _ in range(50):
            response = conn.request("/pid")
            assert response.status == 200
            assert response.text_header("connection") != "close"
            pids.append(int(response.body))
        assert sock.getsockname() == local  # the same connection throughout
    assert len(set(pids)) == 50
    assert proc.proc.pid not in pids


def test_pipelined_requests_are_answered_in_order(spawn_qactuar):
    proc = spawn_qactuar(*FORK)
    with RawClient(proc.port) as conn:
        conn.send(
            encode_request("/echo", "POST", b"first")
            + encode_request("/echo", "POST", b"second")
            + encode_request("/echo", "POST", b"third")
        )
        bodies = [conn.response().body for _ in range(3)]
        assert bodies == [b"first", b"second", b"third"]
        assert conn.request("/pid").status == 200  # and the connection goes on


def test_max_processes_caps_live_children(spawn_qactuar):
    proc = spawn_qactuar(*FORK, "--max-processes", "2")
    results, peak = calls_with_peak_children(
        proc.proc.pid, lambda: httpx.get(proc.url + "/sleep?0.3", timeout=30).status_code, 10
    )
    assert results == [200] * 10
    assert 1 <= peak <= 2


def test_request_timeout_gives_504_and_kills_the_child(spawn_qactuar):
    proc = spawn_qactuar(*FORK, "--request-timeout", "0.5", "--check-process-interval", "0.1")
    start = time.monotonic()
    response = httpx.get(proc.url + "/sleep?30", timeout=10)
    elapsed = time.monotonic() - start
    assert response.status_code == 504
    # after REQUEST_TIMEOUT, and not much later (the child sleeps 30 s)
    assert 0.5 <= elapsed < 0.5 + 0.1 + 2.5
    no_children(proc)
    assert httpx.get(proc.url + "/pid").status_code == 200
    assert "REQUEST_TIMEOUT" in proc.output()


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/exit", "exited with status 3"),
        ("/segv", "killed by SIGSEGV"),
        ("/rtsig", f"killed by {signal.SIGRTMIN + 2}"),
    ],
)
def test_a_dying_child_costs_only_its_request(spawn_qactuar, path, words):
    proc = spawn_qactuar(*FORK)
    response = httpx.get(proc.url + path, timeout=10)
    assert response.status_code == 502
    assert httpx.get(proc.url + "/pid").status_code == 200
    assert words in proc.output()


def test_a_child_dying_mid_response_closes_the_connection(spawn_qactuar):
    proc = spawn_qactuar(*FORK)
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(encode_request("/half"))
        data = read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 200")
    assert not data.endswith(b"0\r\n\r\n")  # never a complete chunked body
    assert b"502" not in data
    assert httpx.get(proc.url + "/pid").status_code == 200


def test_leaks_in_children_do_not_grow_the_parent(spawn_qactuar):
    proc = spawn_qactuar(*FORK, "--no-access-log")
    before = rss_kib(proc.proc.pid)
    with httpx.Client(base_url=proc.url) as client:
        for _ in range(500):
            assert client.get("/leak").text == "1"  # every child starts from the parent
    after = rss_kib(proc.proc.pid)
    assert after - before < 4 * 1024, (before, after)


def test_module_state_does_not_leak_between_requests(spawn_qactuar):
    proc = spawn_qactuar(*FORK)
    with httpx.Client(base_url=proc.url) as client:
        assert client.get("/set?changed").text == "set"
        assert client.get("/get").text == "unset"


def test_slow_clients_cost_no_child(spawn_qactuar):
    proc = spawn_qactuar(*FORK, "--header-timeout", "4", "--no-access-log")
    slow = []

    def normal_requests_among_slow_clients() -> int:
        served = 0
        for step in range(2):  # the slow ones send a byte now and then, as slowloris does
            served += httpx.get(proc.url + "/pid", timeout=5).status_code == 200
            for sock in slow:
                sock.sendall(b"ET /"[step : step + 1])
            time.sleep(0.5)
        return served

    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
            sock.sendall(b"G")
            slow.append(sock)
        # children counted all along: only the normal requests' ones, one at a time
        results, peak = calls_with_peak_children(
            proc.proc.pid, normal_requests_among_slow_clients, 1)
        assert results == [2]
        assert peak <= 1
        # the header timeout (4 s from the first byte) closes them all
        deadline = time.monotonic() + 15
        answers = set()
        for sock in slow:
            data = read_until_closed(sock, max(0.01, deadline - time.monotonic()))
            answers.add(b"408" if data.startswith(b"HTTP/1.1 408") else data)
        assert answers <= {b"408", b""}, answers
    finally:
        for sock in slow:
            sock.close()


def test_sigterm_lets_running_children_finish(spawn_qactuar):
    proc = spawn_qactuar(*FORK)
    results: list[int] = []

    def call() -> None:
        results.append(httpx.get(proc.url + "/sleep?1", timeout=10).status_code)

    callers = [threading.Thread(target=call) for _ in range(3)]
    for t in callers:
        t.start()
    wait_until(lambda: len(fork_children(proc.proc.pid)) >= 3, 10,
               what="a child for each of the 3 requests")
    proc.signal(signal.SIGTERM)
    for t in callers:
        t.join(10)
    assert results == [200, 200, 200]
    assert proc.wait() == 0


def _slow_request_in_a_child(proc, seconds: float, path: str = "/sleep") -> threading.Thread:
    """Start GET ``path`` (/sleep or /block) in a thread; return once its child runs."""
    caller = threading.Thread(
        target=lambda: httpx.get(proc.url + f"{path}?{seconds}", timeout=seconds + 10)
    )
    before = set(fork_children(proc.proc.pid))  # one still exiting does not count
    caller.start()
    wait_until(lambda: set(fork_children(proc.proc.pid)) - before, 10,
               what=f"a child to run GET {path}")
    return caller


@pytest.mark.parametrize("path", ["/sleep", "/block"])
def test_a_running_child_does_not_hold_other_clients_open(spawn_qactuar, path):
    # The child inherits every socket of the parent; it must close them, or a
    # client the parent closes sees no FIN until that child exits. /block
    # blocks the child's event loop: the closing cannot wait for it.
    proc = spawn_qactuar(*FORK, "--keep-alive-timeout", "0.5")
    with RawClient(proc.port) as idle:
        assert idle.request("/pid").status == 200
        answered = time.monotonic()
        caller = _slow_request_in_a_child(proc, 4, path)
        assert idle.read_to_close(10) == b""  # the parent's keep-alive timeout closed it
        # while the child holding a copy still runs (4 s; the timeout is 0.5 s)
        assert caller.is_alive(), f"closed after {time.monotonic() - answered:.1f}s"
    caller.join(10)


@pytest.mark.parametrize("path", ["/sleep", "/block"])
def test_a_running_child_does_not_keep_the_port_open_after_sigterm(spawn_qactuar, path):
    proc = spawn_qactuar(*FORK, "--graceful-timeout", "10")
    caller = _slow_request_in_a_child(proc, 3, path)
    proc.signal(signal.SIGTERM)
    wait_until(lambda: refuses(proc.port), 10, what="the listening socket to be closed")
    # refused while the child (3 s) still runs: it did not hold the port open
    assert caller.is_alive()
    caller.join(10)
    assert proc.wait() == 0


def test_a_request_on_a_kept_connection_during_a_graceful_stop_is_served(spawn_qactuar):
    # After SIGTERM the listeners are closed and their descriptor numbers
    # free: a child forked then must not close whatever reuses them (its own
    # event loop's, say). A client too late for the stop's grace window
    # tries again with a new server (support.stops).
    for _ in range(3):
        proc = spawn_qactuar(*FORK, "--graceful-timeout", "10")
        with RawClient(proc.port, timeout=10) as conn:
            assert conn.request("/pid").status == 200
            caller = _slow_request_in_a_child(proc, 1.5)  # keeps the server draining
            response = request_as_the_stop_begins(proc, conn, "/sleep?0.5")
        caller.join(10)
        assert proc.wait() == 0
        if response is not None:
            break
    else:
        pytest.fail("the client missed the stop's grace window three times")
    assert response.status == 200, response.body
    assert response.text_header("connection") == "close"
    assert "killed by" not in proc.output()


def test_proc_stats_are_logged(spawn_qactuar):
    proc = spawn_qactuar(*FORK, "--gather-proc-stats", "--log-level", "debug")
    assert httpx.get(proc.url + "/pid").status_code == 200
    proc.wait_for_log("KiB peak RSS", 10)


def test_seed_model_number_alias_selects_fork(spawn_qactuar, tmp_path):
    config = tmp_path / "conf.json"
    config.write_text('{"ASYNCRONOUS_MODEL": 1, "APPS": {"/": "forky:app"}}')
    proc = spawn_qactuar("--config", str(config))
    pids = {int(httpx.get(proc.url + "/pid").text) for _ in range(3)}
    assert len(pids) == 3 and proc.proc.pid not in pids
    assert os.path.exists(config)


def test_a_child_the_parent_cannot_watch_is_killed_and_answered_503(spawn_qactuar):
    # pidfd_open fails after the fork (out of descriptors): the parent must not
    # lose the child, its slot or the connection. The child sleeps for 30 s, so
    # it is still running when the parent kills it (a quick /pid child may have
    # answered and exited first, on a loaded machine: the next test's case).
    proc = spawn_qactuar(*FORK, "--max-processes", "1", launcher="failing_fork",
                         env={"FAIL_PIDFDS": "1"})
    assert httpx.get(proc.url + "/sleep?30", timeout=10).status_code == 503
    assert httpx.get(proc.url + "/pid", timeout=5).status_code == 200  # the one slot is free
    assert re.search(r"cannot watch child \d+ for .*: killed it", proc.output()), proc.output()
    no_children(proc)


def test_a_child_that_answered_before_the_parent_could_watch_it_is_not_answered_twice(
    spawn_qactuar,
):
    # pidfd_open fails only after the child has sent its response: the client
    # must get that response alone, and its connection must go on
    proc = spawn_qactuar(*FORK, launcher="failing_fork",
                         env={"FAIL_PIDFDS": "1", "FAIL_PIDFDS_DELAY": "0.5"})
    with RawClient(proc.port, timeout=10) as conn:
        first = conn.request("/pid")
        assert first.status == 200
        second = conn.request("/pid")
        assert second.status == 200 and second.body != first.body
    assert "cannot watch child" not in proc.output()


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_that_reaches_a_child_as_it_is_forked_is_not_the_parents(
    spawn_qactuar, signum,
):
    # Ctrl-C or a service manager's SIGTERM reaches the whole process group,
    # a child just forked included. Before the child put its own handlers in
    # place, the parent's took the signal and passed it to the parent's event
    # loop (the wakeup descriptor both share): the parent stopped although it
    # was never signalled, or took a single Ctrl-C for two and stopped at once.
    # Fork 1 is the zygote's (forked by the parent), 2 the first request's.
    proc = spawn_qactuar(*FORK, launcher="failing_fork",
                         env={"TERM_IN_CHILD": "1,2", "TERM_SIGNAL": signum})
    assert httpx.get(proc.url + "/pid", timeout=5).status_code == 200
    time.sleep(0.3)  # the loop has read its wakeup descriptor
    assert httpx.get(proc.url + "/pid", timeout=5).status_code == 200
    assert "stopping" not in proc.output(), proc.output()
    no_children(proc)


def test_a_failed_fork_answers_503_and_the_parent_goes_on(spawn_qactuar):
    # the first request's fork (the zygote's second) fails as when out of
    # processes (EAGAIN)
    proc = spawn_qactuar(*FORK, launcher="failing_fork", env={"FAIL_FORKS": "2"})
    assert httpx.get(proc.url + "/pid", timeout=5).status_code == 503
    assert httpx.get(proc.url + "/pid", timeout=5).status_code == 200
    assert "cannot fork for" in proc.output()


def test_a_zygote_that_cannot_be_forked_is_forked_again_and_requests_wait_for_it(
    spawn_qactuar,
):
    # the zygote's fork fails at start: requests wait (parsed) and are served
    # by the one forked ZYGOTE_RESPAWN_DELAY later, not refused
    proc = spawn_qactuar(*FORK, launcher="failing_fork", env={"FAIL_FORKS": "1"})
    assert httpx.get(proc.url + "/pid", timeout=10).status_code == 200
    assert "cannot fork the zygote" in proc.output()


def test_an_app_in_a_child_hears_http_disconnect_when_its_client_leaves(spawn_qactuar, tmp_path):
    # the child never reads its client's socket (what comes next is the
    # parent's): it still notices the client's FIN
    proc = spawn_qactuar("tls_app:app", "--model", "fork", "--request-timeout", "0")
    gone = tmp_path / "gone"
    sock = socket.create_connection(("127.0.0.1", proc.port))
    sock.sendall(encode_request(f"/disconnect?{gone}"))
    wait_until(lambda: fork_children(proc.proc.pid), what="no child for the request")
    sock.close()
    wait_until(lambda: gone.exists() and gone.read_text() == "disconnected",
               what="the app to hear http.disconnect")
    wait_until(lambda: not fork_children(proc.proc.pid), what="the child to exit")


def test_a_request_sent_as_the_stop_begins_while_the_last_child_works_on_is_answered(
    spawn_qactuar,
):
    # the child has answered but its app goes on when the stop begins: the
    # connection is idle, and the parent takes it back as such (IDLE_GRACE
    # from then on); the child must not close it under the next request
    proc = spawn_qactuar(*FORK, "--graceful-timeout", "10")
    with RawClient(proc.port) as conn:
        assert conn.request("/after?1").body == b"answered"
        proc.signal(signal.SIGTERM)
        proc.wait_for_log(STOP_LINE)
        conn.send(encode_request("/pid"))
        response = conn.response()
    assert response.status == 200
    assert response.text_header("connection") == "close"
    assert proc.wait() == 0


def _server_receive_buffer(port: int, client_port: int) -> int:
    """The kernel's receive-buffer allowance (skmem rb) of the server's end of a connection."""
    out = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"( sport = :{port} and dport = :{client_port} )"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout
    match = re.search(r"\brb(\d+)\b", out)
    assert match, out
    return int(match.group(1))


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
def test_a_child_does_not_grow_its_connections_kernel_receive_buffer(spawn_qactuar):
    # A child keeps its socket unread (the parent reads what comes next): the
    # way it holds reading off must not raise the connection's receive buffer
    # (a low-water mark above half of it makes Linux grow it, up to
    # tcp_rmem's max: 32 MiB of kernel memory a client could fill per
    # connection, where the default is 128 KiB)
    proc = spawn_qactuar(*FORK)
    with RawClient(proc.port) as conn:
        client_port = conn.sock.getsockname()[1]
        before = _server_receive_buffer(proc.port, client_port)
        for _ in range(3):
            assert conn.request("/pid").status == 200
        after = _server_receive_buffer(proc.port, client_port)
    assert after <= before, (before, after)


def test_a_request_sent_as_pipelined_answers_arrive_is_served_at_once(spawn_qactuar):
    # Found with the admin figures' tests: the parent parsed the next request
    # while the last pipelined one's child ran, then took it for one that child
    # had served: lost, and the connection closed at KEEP_ALIVE_TIMEOUT.
    proc = spawn_qactuar(*FORK, "--keep-alive-timeout", "30")
    for _ in range(5):
        with RawClient(proc.port, timeout=10) as client:
            client.send(encode_request("/pid") * 3)
            for _ in range(3):
                assert client.response().status == 200
            started = time.monotonic()
            client.send(encode_request("/pid"))
            assert client.response(timeout=5).status == 200
            assert time.monotonic() - started < 5
