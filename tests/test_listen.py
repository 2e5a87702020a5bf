"""Where qactuar listens: several BIND addresses, inherited sockets (--fd) and
systemd socket activation, in each process model, with real processes.

These test qactuar's own binding, so most let it bind a port found free a
moment before (support.free_port): the one place the tests probe ports.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support import (
    APPS,
    ROOT,
    TESTS,
    Spawned,
    accepts,
    free_port,
    model_args,
    qactuar_env,
    refuses,
    run_qactuar,
    start_program,
    stop_process,
)

MODELS = ["fork", "async", "prefork"]
#: Every model's own flags: one prefork worker is enough to serve.
MODEL_ARGS = ("--graceful-timeout", "2")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port6() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return int(sock.getsockname()[1])


def env() -> dict[str, str]:
    return qactuar_env()


@pytest.fixture
def start(tmp_path: Any) -> Iterator[Callable[..., Spawned]]:
    """Start a command in tests/apps in its own process group, the log in a file, once
    ``port`` accepts connections (0: at once); stopped by PID, its group swept, at the end."""
    started: list[Spawned] = []

    def run(argv: list[str], port: int = 0, pass_fds: tuple[int, ...] = ()) -> Spawned:
        log = str(tmp_path / f"out-{len(started)}.log")
        proc = start_program(argv, log, lambda: not port or accepts(port),
                             what=f"{argv[0]} to listen on {port}", cwd=APPS, env=env(),
                             pass_fds=pass_fds)
        started.append(Spawned(proc, port, log))
        return started[-1]

    yield run
    for item in started:
        item.stop()


def qactuar(*args: str) -> list[str]:
    return [sys.executable, "-m", "qactuar", *args]


def get_unix(path: str, url: str = "http://qactuar/") -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        return client.get(url)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    return output


@pytest.mark.parametrize("model", MODELS)
def test_several_binds_at_once_ipv4_ipv6_and_unix(model, start, tmp_path):
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    port, port6, unused = free_port(), free_port6(), free_port()
    path = str(tmp_path / "app.sock")
    server = start(qactuar(
        "basic:hello", *model_args(model), *MODEL_ARGS, "--port", str(unused),
        "--bind", f"127.0.0.1:{port}", "--bind", f"[::1]:{port6}", "--bind", f"unix:{path}",
        "--uds-mode", "0660",
    ), port=port)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, world!"
    assert httpx.get(f"http://[::1]:{port6}/", timeout=5).text == "Hello, world!"
    assert get_unix(path).text == "Hello, world!"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    output = server.output()
    for where in (f"http://127.0.0.1:{port}", f"http://[::1]:{port6}", f"unix:{path}"):
        assert f"Listening on {where}" in output
    # BIND replaces HOST/PORT, and says so
    assert "BIND set: PORT ignored" in output
    assert refuses(unused)


def listening_socket(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET:
        sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@pytest.mark.parametrize("model", MODELS)
def test_fd_serves_a_socket_the_test_bound_and_passed(model, start):
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        fd = sock.fileno()
        server = start(qactuar("basic:hello", *model_args(model), *MODEL_ARGS, "--fd", str(fd),
                               "--port", str(free_port())), pass_fds=(fd,))
        server.wait_for_log(f"Listening on http://127.0.0.1:{port}")
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, world!"
    assert f"Listening on http://127.0.0.1:{port}" in server.output()
    # FD replaces HOST/PORT, and says so (it used to, silently)
    assert "FD set: PORT ignored" in server.output()


def run_with_fd(fd: int, *args: str) -> subprocess.CompletedProcess[str]:
    return run_qactuar("basic:hello", "--fd", str(fd), *args,
                       pass_fds=(fd,) if fd < 90 else ())


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["closed", "file", "not listening", "udp"])
def test_a_bad_fd_is_a_one_line_error(kind, model, tmp_path):
    if kind == "closed":
        fd = 97
        result = run_with_fd(fd, *model_args(model))
        expected = "descriptor 97 is not open"
    elif kind == "file":
        with open(tmp_path / "f", "w") as fh:
            fd = fh.fileno()
            result = run_with_fd(fd, *model_args(model))
            expected = f"descriptor {fd} is not a socket"
    else:
        kind_ = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind_) as sock:
            sock.bind(("127.0.0.1", 0))
            fd = sock.fileno()
            result = run_with_fd(fd, *model_args(model))
            expected = f"descriptor {fd} is " + (
                "not a stream" if kind == "udp" else "not listening")
    assert result.returncode == 1
    line = one_line_error(result)
    # the setting, its value and where it came from, as every config error says
    assert f"cannot serve on FD={fd} (from command line)" in line and expected in line, line


def test_a_bad_fd_in_bind_names_bind_and_its_source(tmp_path):
    config = tmp_path / "qactuar.json"
    config.write_text(json.dumps({"BIND": ["fd://98"]}))
    result = run_qactuar("basic:hello", "--model", "async",
                         env={"QACTUAR_CONFIG": str(config)})
    assert result.returncode == 1
    line = one_line_error(result)
    assert f"cannot serve on BIND=fd://98 (from {config})" in line, line
    assert "descriptor 98 is not open" in line, line


@pytest.mark.parametrize("model", MODELS)
def test_a_descriptor_given_twice_is_served_once(model, start):
    # --fd N and BIND fd://N (as systemd's fd 3 and --fd 3) name one socket:
    # adopted twice, it was listened on twice (uvloop refused) and closed twice
    with listening_socket() as sock:
        port, fd = sock.getsockname()[1], sock.fileno()
        server = start(qactuar("basic:hello", *model_args(model), *MODEL_ARGS, "--fd", str(fd),
                               "--bind", f"fd://{fd}"), pass_fds=(fd,))
        server.wait_for_log(f"Listening on http://127.0.0.1:{port}")
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, world!"
        stop_process(server.proc)
    assert server.proc.returncode == 0, server.output()
    assert server.output().count(f"Listening on http://127.0.0.1:{port}") == 1, server.output()
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("args, message", [
    (("--bind", "localhost"), "expected host:port"),
    (("--bind", "::1:8000"), "put an IPv6 address in brackets"),
    (("--bind", "127.0.0.1:99999"), "the port must be a number"),
    (("--bind", "unix:"), "unix: needs a path"),
    (("--uds-mode", "999"), "octal file mode"),
    (("--fd", "-3"), "descriptor numbers are 0 or more"),
])
def test_bad_listening_settings_are_refused_in_one_line(args, message):
    result = run_qactuar("basic:hello", *args)
    assert result.returncode == 2
    line = one_line_error(result)
    assert "(from command line)" in line and message in line, line


def test_bind_error_names_the_address(tmp_path):
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        result = run_qactuar("basic:hello", "--model", "async",
                             "--bind", f"unix:{tmp_path}/a.sock", "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in one_line_error(result)


@pytest.mark.parametrize("args", [
    ("--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0"),
    ("--bind", "unix:/tmp/qactuar-never.sock"),
    ("--fd", "3"),
])
def test_reuse_port_refuses_what_it_cannot_make_lanes_for(args):
    result = run_qactuar("basic:hello", "--model", "prefork", "--reuse-port", *args)
    assert result.returncode == 2
    line = one_line_error(result)
    assert "REUSE_PORT=True" in line and "needs exactly one TCP address" in line, line


def test_reuse_port_with_one_bind_makes_lanes_on_it(start):
    port = free_port()
    start(qactuar("basic:hello", "--model", "prefork", "--workers", "2",
                  "--reuse-port", "--bind", f"127.0.0.1:{port}"), port=port)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, world!"


def socket_activate(tmp_path: Any, port: int, model: str, *args: str) -> list[str]:
    """systemd-socket-activate listening on 127.0.0.1:port and a Unix socket, then qactuar."""
    assert SOCKET_ACTIVATE is not None
    pythonpath = os.path.join(TESTS, "apps") + os.pathsep + ROOT
    return [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", "-l", str(tmp_path / "act.sock"),
            "--fdname", "web:local", "-E", f"PYTHONPATH={pythonpath}",
            *qactuar("listen_apps:environ", *model_args(model), *MODEL_ARGS, *args)]


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
@pytest.mark.parametrize("model", MODELS)
def test_systemd_socket_activation_serves_on_the_activated_sockets(model, start, tmp_path):
    port, unused = free_port(), free_port()
    # it listens at once; the first connection makes it exec qactuar with the sockets
    server = start(socket_activate(tmp_path, port, model, "--port", str(unused)), port=port)
    first = httpx.get(f"http://127.0.0.1:{port}/", timeout=15).json()
    # the variables are gone from the server (and so from every process it starts)
    assert first["LISTEN_FDS"] is None and first["LISTEN_PID"] is None
    assert first["LISTEN_FDNAMES"] is None
    assert get_unix(str(tmp_path / "act.sock")).json()["LISTEN_FDS"] is None
    output = server.output()
    assert "Using inherited socket 3 (LISTEN_FDS web)" in output
    assert "Using inherited socket 4 (LISTEN_FDS local)" in output
    assert f"Listening on http://127.0.0.1:{port}" in output
    assert f"Listening on unix:{tmp_path / 'act.sock'}" in output
    # socket activation replaces HOST/PORT
    assert refuses(unused)


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
def test_a_systemd_socket_also_given_as_fd_is_served_once(start, tmp_path):
    port, unused = free_port(), free_port()
    server = start(socket_activate(tmp_path, port, "async", "--port", str(unused), "--fd", "3"),
                   port=port)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=15).status_code == 200
    output = server.output()
    assert "Inherited socket 3 (FD=3) is LISTEN_FDS web already" in output, output
    assert output.count(f"Listening on http://127.0.0.1:{port}") == 1, output


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
def test_systemd_sockets_meant_for_another_process_are_ignored(start, tmp_path):
    port, own = free_port(), free_port()
    server = start([SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", "-E", "LISTEN_PID=1", "-E",
                    f"PYTHONPATH={os.path.join(TESTS, 'apps')}{os.pathsep}{ROOT}",
                    *qactuar("listen_apps:environ", "--model", "async", "--host", "127.0.0.1",
                             "--port", str(own))], port=port)  # systemd-socket-activate
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        # qactuar binds HOST/PORT instead
        server.wait_for_log(f"Listening on http://127.0.0.1:{own}")
    assert httpx.get(f"http://127.0.0.1:{own}/", timeout=5).json()["LISTEN_FDS"] is None
    assert "is not this process" in server.output()


def unit(name: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a systemd unit in deploy/ (keys may repeat)."""
    found: dict[str, list[str]] = {}
    with open(os.path.join(ROOT, "deploy", name), encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                found.setdefault(key, []).append(value)
    return found


def test_the_deploy_units_agree_on_the_stop_time():
    service = unit("qactuar.service")
    argv = shlex.split(service["ExecStart"][0])
    graceful = float(argv[argv.index("--graceful-timeout") + 1])
    assert float(service["TimeoutStopSec"][0]) > graceful + 5  # the master's slack
    assert service["KillSignal"] == ["SIGTERM"] and service["KillMode"] == ["mixed"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "qactuar.socket" in service["Requires"][0]


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
def test_the_deploy_units_serve_under_socket_activation_and_reload(start, tmp_path):
    """deploy/qactuar.socket's ListenStream= (on free ports, the Unix socket in tmp) and
    deploy/qactuar.service's ExecStart, handed over as systemd does."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    socket_unit, service = unit("qactuar.socket"), unit("qactuar.service")
    port, port6, path = free_port(), free_port6(), str(tmp_path / "qactuar.sock")
    moved = {"127.0.0.1:8000": f"127.0.0.1:{port}", "[::1]:8000": f"[::1]:{port6}"}
    listens = [moved.get(value, path) for value in socket_unit["ListenStream"]]
    assert len(set(listens)) == 3
    names = ":".join(socket_unit["FileDescriptorName"] * len(listens))
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0].endswith("/qactuar") and argv[-1] == "myapp:app"
    # the test's app, and one worker on this small machine (the last value wins)
    command = [*qactuar(*argv[1:-1], "--workers", "1"), "listen_apps:environ"]
    pythonpath = os.path.join(TESTS, "apps") + os.pathsep + ROOT
    activate = [SOCKET_ACTIVATE, *(f"--listen={value}" for value in listens),
                f"--fdname={names}", "-E", f"PYTHONPATH={pythonpath}"]
    server = start([*activate, *command], port=port)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=15).json()["LISTEN_FDS"] is None
    assert httpx.get(f"http://[::1]:{port6}/", timeout=5).status_code == 200
    assert get_unix(path).status_code == 200
    for fd in (3, 4, 5):
        assert f"Using inherited socket {fd} (LISTEN_FDS qactuar)" in server.output()
    # ExecReload: SIGHUP to the main process replaces the workers on the same sockets
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("SIGHUP: reloading")
    server.wait_for_log("Stopping worker")  # the old worker leaves
    for _ in range(10):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert httpx.get(f"http://[::1]:{port6}/", timeout=5).status_code == 200
        assert get_unix(path).status_code == 200


def test_a_prefork_sighup_does_not_move_the_server(start, tmp_path):
    port, other = free_port(), free_port()
    config = tmp_path / "qactuar.json"
    config.write_text(json.dumps({"BIND": [f"127.0.0.1:{port}"], "UDS_MODE": "0600"}))
    server = start(qactuar("basic:hello", "--model", "prefork", "--workers", "1",
                           "--config", str(config)), port=port)
    server.wait_for_log("serving")  # the master handles SIGHUP by now
    config.write_text(json.dumps({"BIND": [f"127.0.0.1:{other}"], "UDS_MODE": "0666"}))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("Stopping worker")
    output = server.output()
    assert f"SIGHUP: BIND changed to ['127.0.0.1:{other}']; it takes effect at the next start" \
        in output
    assert "SIGHUP: UDS_MODE changed" in output
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, world!"
    assert refuses(other)


def test_listening_settings_from_the_environment_and_a_file(tmp_path, monkeypatch):
    from qactuar.config import ConfigError, load_config

    monkeypatch.delenv("QACTUAR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QACTUAR_BIND", "127.0.0.1:8000, [::1]:8000,unix:/run/a.sock")
    monkeypatch.setenv("QACTUAR_FD", "3,4")
    config = load_config()
    assert config.BIND == ["127.0.0.1:8000", "[::1]:8000", "unix:/run/a.sock"]
    assert config.FD == [3, 4]
    monkeypatch.setenv("QACTUAR_FD", "three")
    with pytest.raises(ConfigError, match="expected a list of integers"):
        load_config()
    monkeypatch.delenv("QACTUAR_FD")
    monkeypatch.delenv("QACTUAR_BIND")
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"FD": ["3"]}))
    with pytest.raises(ConfigError, match=r"config FD=\['3'\] .*expected a list of integers"):
        load_config(str(path))
    path.write_text(json.dumps({"FD": [True]}))
    with pytest.raises(ConfigError, match="expected a list of integers"):
        load_config(str(path))
    path.write_text(json.dumps({"FD": [5], "UDS_MODE": "660"}))
    assert (load_config(str(path)).FD, load_config(str(path)).UDS_MODE) == ([5], "660")
