"""Where the admin socket runs (issue 12): in the process itself (async), the
fork parent or the prefork master, never in a child or a worker; its token,
its start-up errors, its Unix socket file, and that no admin client can
slow the main port. Real processes, real sockets; every wait on an event (a
log line, an app's marker file, a socket read).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    ADMIN,
    TOKEN,
    Admin,
    RawClient,
    admin_port,
    children_of,
    encode_request,
    fd_targets,
    free_port,
    refuses,
    run_qactuar,
    wait_until,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")

MODELS = ("async", "fork", "prefork")


def model_args(model: str) -> tuple[str, ...]:
    return ("--model", model, "--workers", "2") if model == "prefork" else ("--model", model)


def status(port: int, token: str | None = TOKEN) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"http://127.0.0.1:{port}/status", headers=headers, timeout=10)


def one_line(result: Any) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    return str(output)


def marked(folder: Path, name: str) -> int:
    """promises_app's ``<name>-<pid>`` marker: the pid of the process that wrote it."""
    found = wait_until(lambda: sorted(folder.glob(f"{name}-*[0-9]")), 15,
                       what=f"the app's {name}-<pid> marker")
    return int(found[0].name.rsplit("-", 1)[1])


def tcp_inodes(local_port: int, remote_port: int | None = None) -> list[int]:
    """Inodes of the IPv4 sockets on 127.0.0.1:``local_port`` (listening when
    ``remote_port`` is None, else the connection to that client port)."""
    found = []
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            if int(local.split(":")[1], 16) != local_port:
                continue
            if remote_port is None and state == "0A":
                found.append(inode)
            elif remote_port is not None and int(remote.split(":")[1], 16) == remote_port:
                found.append(inode)
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of every socket process ``pid`` holds a descriptor to."""
    return {int(t[8:-1]) for t in fd_targets(pid) if t.startswith("socket:[")}


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """The test process's umask (inherited by the server it starts) for a while."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# serving, token -------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_status_lists_the_models_processes_and_needs_the_token(model, spawn_qactuar):
    server = spawn_qactuar("prefork_apps:app", *model_args(model), *ADMIN,
                           "--admin-token", TOKEN)
    port = admin_port(server)
    if model == "prefork":
        workers = wait_until(lambda: len(children_of(server.pid)) == 2
                             and server.output().count(" serving") >= 2
                             and children_of(server.pid), 15, what="two workers serving")
    answer = status(port)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == model
    roles = [(p["role"], p["pid"]) for p in body["processes"]]
    first = {"async": "process", "fork": "parent", "prefork": "master"}[model]
    assert roles[0] == (first, server.pid)
    if model == "prefork":
        assert sorted(pid for role, pid in roles[1:] if role == "worker") == sorted(workers)
        assert len(roles) == 3
        assert body["counters"]["workers"] == 2
    elif model == "fork":  # and its zygote, the parent's one child
        assert roles[1:] == [("zygote", pid) for pid in children_of(server.pid)]
    else:
        assert len(roles) == 1
    # the main port serves meanwhile, not the admin app
    assert httpx.get(server.url + "/", timeout=10).status_code == 200
    missing, wrong = status(port, token=None), status(port, token="not-" + TOKEN)
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "processes" not in missing.text


def test_fork_status_lists_a_child_while_it_serves(spawn_qactuar, tmp_path):
    server = spawn_qactuar("promises_app:app", "--model", "fork", *ADMIN, "--admin-token",
                           TOKEN, env={"PROMISES_DIR": str(tmp_path)})
    port = admin_port(server)
    with RawClient(server.port, timeout=20) as client:
        client.send(encode_request("/hold"))
        try:
            child = marked(tmp_path, "held")
            processes = status(port).json()["processes"]
        finally:
            (tmp_path / "release").touch()
        assert processes[0]["pid"] == server.pid
        [zygote] = children_of(server.pid)
        assert [(p["role"], p["pid"], p["detail"]) for p in processes[1:]] == [
            ("zygote", zygote, ""), ("child", child, "GET /hold")]
        assert client.response().status == 200
    wait_until(lambda: len(status(port).json()["processes"]) == 2, 15,
               what="the child gone from /status")


def test_a_generated_token_is_written_0600_its_path_logged_never_the_token(
    spawn_qactuar, tmp_path
):
    runtime = tmp_path / "run"
    runtime.mkdir()
    with umask(0):  # the modes must not depend on the umask
        server = spawn_qactuar("basic:hello", "--model", "async", *ADMIN,
                               env={"XDG_RUNTIME_DIR": str(runtime)})
    port = admin_port(server)
    path = runtime / "qactuar" / f"admin-{port}.token"
    assert f"Admin token written to {path}" in server.output()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = path.read_text().strip()
    assert len(token) >= 40
    assert status(port, token).status_code == 200
    assert status(port, token[:-1]).status_code == 401
    # the two access lines are out: whatever logged the token would have by now
    log = server.wait_for_log('"GET /status HTTP/1.1" 401')
    assert token not in log
    server.stop()
    assert not path.exists()  # removed at stop: a stale token is no use


# start-up errors ----------------------------------------------------------------------------


def test_a_token_file_that_cannot_be_written_stops_start_up_in_one_line(tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    path = str(tmp_path / "plain" / "admin.token")
    result = run_qactuar("basic:hello", "--model", "async", "--host", "127.0.0.1", "--port",
                         "0", *ADMIN, "--admin-token-file", path)
    assert result.returncode == 2
    assert one_line(result) == (
        f"qactuar: config ADMIN_TOKEN_FILE={path!r} (from command line): cannot write the "
        f"admin token to {path}: Not a directory")


@pytest.mark.parametrize("model", MODELS)
def test_a_busy_admin_port_stops_start_up_in_one_line(model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        result = run_qactuar("basic:hello", *model_args(model), "--host", "127.0.0.1",
                             "--port", "0", "--admin-enabled", "--admin-host", "127.0.0.1",
                             "--admin-port", str(busy), "--admin-token", TOKEN)
    assert result.returncode == 2
    assert one_line(result) == (
        f"qactuar: config ADMIN_PORT={busy} (from command line): "
        f"cannot listen on 127.0.0.1:{busy}: Address already in use")


@pytest.mark.parametrize("model", MODELS)
def test_a_non_loopback_admin_host_needs_an_explicit_token(model, tmp_path):
    result = run_qactuar("basic:hello", *model_args(model), "--host", "127.0.0.1", "--port",
                         "0", "--admin-enabled", "--admin-host", "0.0.0.0", "--admin-port", "0",
                         env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert one_line(result) == (
        "qactuar: config ADMIN_HOST='0.0.0.0' (from command line): 0.0.0.0 is not a loopback "
        "address: serving the admin socket on it needs an explicit ADMIN_TOKEN")
    assert not (tmp_path / "qactuar").exists()  # no token written for a refused start


def test_a_short_admin_token_is_refused_at_start(tmp_path):
    result = run_qactuar("basic:hello", "--model", "async", "--host", "127.0.0.1", "--port",
                         "0", "--admin-enabled", "--admin-host", "127.0.0.1", "--admin-port", "0",
                         env={"XDG_RUNTIME_DIR": str(tmp_path),
                              "QACTUAR_ADMIN_TOKEN": "fifteen-chars-x"})
    assert result.returncode == 2
    assert one_line(result) == (
        "qactuar: config ADMIN_TOKEN='********' (from environment QACTUAR_ADMIN_TOKEN): 15 "
        "characters: an admin token needs at least 16 (or none: one is generated)")
    assert "fifteen" not in result.stdout + result.stderr


def test_the_ipv6_loopback_needs_no_explicit_token(spawn_qactuar, tmp_path):
    if not socket.has_ipv6 or not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    server = spawn_qactuar("basic:hello", "--model", "async", "--admin-enabled",
                           "--admin-host", "::1", "--admin-port", "0",
                           env={"XDG_RUNTIME_DIR": str(tmp_path)})
    found = re.search(r"Admin socket on http://\[::1\]:(\d+)", server.output())
    assert found is not None, server.output()
    token = (tmp_path / "qactuar" / f"admin-{found.group(1)}.token").read_text().strip()
    answer = httpx.get(f"http://[::1]:{found.group(1)}/status",
                       headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_a_busy_admin_uds_stops_start_up_in_one_line(tmp_path):
    path = str(tmp_path / "admin.sock")
    with socket.socket(socket.AF_UNIX) as taken:
        taken.bind(path)
        taken.listen(1)
        result = run_qactuar("basic:hello", "--model", "async", "--host", "127.0.0.1",
                             "--port", "0", "--admin-enabled", "--admin-uds", path,
                             "--admin-token", TOKEN)
    assert result.returncode == 2
    assert one_line(result) == (
        f"qactuar: config ADMIN_UDS={path!r} (from command line): "
        f"cannot listen on unix:{path}: Address already in use")


@pytest.mark.parametrize("model", MODELS)
def test_admin_uds_is_0600_served_and_removed_at_stop(model, spawn_qactuar, tmp_path):
    path = tmp_path / "admin.sock"
    with umask(0):
        server = spawn_qactuar("basic:hello", *model_args(model), "--admin-enabled",
                               "--admin-uds", str(path), "--admin-token", TOKEN)
    server.wait_for_log(f"Admin socket on unix:{path}")
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
        answer = client.get("http://admin/status", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["model"] == model
    server.stop()
    assert server.proc.returncode == 0
    assert not path.exists()


# never in a child or a worker ----------------------------------------------------------------


def test_no_prefork_worker_holds_the_admin_socket_or_its_connections(spawn_qactuar):
    server = spawn_qactuar("prefork_apps:app", *model_args("prefork"), *ADMIN,
                           "--admin-token", TOKEN)
    port = admin_port(server)
    [listening] = tcp_inodes(port)
    with RawClient(port, timeout=20) as admin:
        admin.send(b"GET /status HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nauthorization: Bearer " % port
                   + TOKEN.encode() + b"\r\n\r\n")
        assert admin.response().status == 200  # set up: the master holds it
        client_port = admin.sock.getsockname()[1]
        [connection] = tcp_inodes(port, client_port)
        first = set(children_of(server.pid))
        server.signal(signal.SIGTTIN)  # a third worker, forked with the connection open
        server.wait_for_log(" serving", count=3)
        workers = set(children_of(server.pid))
        assert len(workers) == 3 and workers > first
        assert {listening, connection} <= socket_inodes(server.pid)  # the master's
        for worker in workers:
            assert not {listening, connection} & socket_inodes(worker), worker


def test_prefork_workers_keep_a_main_socket_on_the_admin_port_number(spawn_qactuar):
    # the main socket on 127.0.0.2:P, the admin socket on 127.0.0.1:P: a new
    # worker closed every socket on port P, its own listener too, and died
    # (the master gave up: "Workers cannot start"; found by review)
    port = free_port()
    server = spawn_qactuar("basic:hello", "--model", "prefork", "--workers", "2",
                           "--host", "127.0.0.2", "--port", str(port),
                           "--admin-enabled", "--admin-host", "127.0.0.1",
                           "--admin-port", str(port), "--admin-token", TOKEN)
    server.wait_for_log(" serving", count=2)
    answer = httpx.get(f"http://127.0.0.2:{port}/", timeout=10)
    assert answer.status_code == 200 and answer.text == "Hello, world!"
    assert Admin(port).call("GET", "/status").status_code == 200
    assert "cannot start" not in server.output()


def test_no_fork_child_holds_the_admin_socket_or_its_connections(spawn_qactuar, tmp_path):
    server = spawn_qactuar("promises_app:app", "--model", "fork", *ADMIN, "--admin-token",
                           TOKEN, env={"PROMISES_DIR": str(tmp_path)})
    port = admin_port(server)
    [listening] = tcp_inodes(port)
    with RawClient(port, timeout=20) as admin, RawClient(server.port, timeout=20) as client:
        admin.send(b"GET /status HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nauthorization: Bearer " % port
                   + TOKEN.encode() + b"\r\n\r\n")
        assert admin.response().status == 200
        [connection] = tcp_inodes(port, admin.sock.getsockname()[1])
        client.send(encode_request("/hold"))
        try:
            child = marked(tmp_path, "held")
            parents, childs = socket_inodes(server.pid), socket_inodes(child)
        finally:
            (tmp_path / "release").touch()
        assert {listening, connection} <= parents
        assert not {listening, connection} & childs
        assert client.response().status == 200


# admin clients never slow the main port -------------------------------------------------------


def burst(url: str, count: int) -> float:
    """Seconds ``count`` main-port requests take, one after another on one connection."""
    started = time.monotonic()
    with httpx.Client(timeout=20) as client:
        for _ in range(count):
            assert client.get(url).status_code == 200
    return time.monotonic() - started


@pytest.mark.parametrize("model", ["async", "fork"])
def test_admin_clients_that_read_nothing_or_send_half_a_request_do_not_delay_the_main_port(
    model, spawn_qactuar
):
    server = spawn_qactuar("basic:hello", "--model", model, *ADMIN, "--admin-token", TOKEN)
    port = admin_port(server)
    baseline = burst(server.url + "/", 30)
    with ExitStack() as stack:
        request = (b"GET /status HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nauthorization: Bearer " % port
                   + TOKEN.encode() + b"\r\n\r\n")
        for i in range(60):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), 10))
            if i % 3 == 1:
                sock.sendall(request[:40])  # half a request head
            elif i % 3 == 2:
                sock.sendall(request * 50)  # 50 answers it never reads
        # each of them accepted and read by the admin server: one more request's
        # access line comes after the 60 connections in its accept queue
        assert status(port).status_code == 200
        server.wait_for_log('"GET /status HTTP/1.1" 200')
        loaded = burst(server.url + "/", 30)
        assert loaded < baseline * 3 + 2.0, (baseline, loaded)
        assert status(port).status_code == 200  # and the admin socket still answers


@pytest.mark.parametrize("model", MODELS)
def test_sigterm_stops_everything_with_admin_clients_connected(model, spawn_qactuar):
    server = spawn_qactuar("basic:hello", *model_args(model), *ADMIN, "--admin-token", TOKEN,
                           "--graceful-timeout", "3")
    port = admin_port(server)
    if model == "prefork":
        server.wait_for_log(" serving", count=2)
    with ExitStack() as stack:
        for i in range(6):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), 10))
            if i % 3 == 1:
                # half a request
                sock.sendall(b"GET /status HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n" % port)
            elif i % 3 == 2:
                client = RawClient.over(sock, timeout=10)
                client.send(b"GET /status HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n" % port
                            + b"authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
                assert client.response().status == 200  # kept alive, idle
        term_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        took = time.monotonic() - term_at
    assert took < 3 + 2 + 3.0, took  # GRACEFUL_TIMEOUT, the admin's 2 s, margin
    assert refuses(port)
    assert not children_of(server.pid)
