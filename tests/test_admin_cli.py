"""``qactuar admin ...`` against a stand-in admin socket (tests/admin_standin.py).

The stand-in is served by qactuar's core in a thread (the ``serve`` fixture),
on TCP or on a Unix socket; the command runs in this process
(``qactuar.cli.main`` with ``admin ...``, as the console script calls it) so that
each case costs no interpreter start, and once as ``python -m qactuar`` to prove
the dispatch from the real command line. The stand-in records each request: the
tests assert what the command sent (method, path, bearer token, JSON body) as
well as what it printed and its exit code (client.EXIT_*).
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from admin_standin import APPS, TOKEN, StandIn
from support import run_qactuar

from qactuar.cli import main

STATUS = """\
qactuar 0.2.0 · prefork model · pid 4100 · up 1 h 2 min

requests/s (1, 5, 15 min)      1.50 / 0.40 / 0.12
in flight                      2
connections (HTTP, WebSocket)  3 / 1
status classes                 1xx 0  2xx 1206  3xx 0  4xx 38  5xx 4
latency p50 / p95 / p99        1.2 ms / 4.0 ms / 10.5 ms

 PID  ROLE    STATE    AGE        REQUESTS  CPU (s)       RSS
4100  master  ready    1 h 2 min         0     1.25  40.0 MiB
4101  worker  serving  1 min 5 s      1241    12.50  50.0 MiB
4102  worker  ready    5 s               7     0.05  30.0 MiB
"""
APPS_TABLE = """\
ROUTE    APP           SOURCE
/        basic:hello   config
/api/v2  api.main:app  admin
"""
CONFIG_TABLE = """\
KEY              VALUE     LIVE
ACCESS_LOG       true      live
ADMIN_TOKEN      ********  restart
LOG_LEVEL        info      live
MAX_REQUESTS     0         live
MODEL            prefork   restart
PORT             8000      restart
REQUEST_TIMEOUT  30.0      live
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str


@dataclass
class Admin:
    """A stand-in admin socket, and ``where``: the options that reach it."""

    standin: StandIn
    where: list[str]


@pytest.fixture
def cli(capsys: Any, monkeypatch: Any, tmp_path: Any) -> Callable[..., Ran]:
    """``cli(*args)``: ``qactuar admin <args>`` in this process; its exit code and output.
    It runs in an empty directory, without QACTUAR_* settings of the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("QACTUAR_CONFIG", "QACTUAR_ADMIN_TOKEN", "QACTUAR_ADMIN_TOKEN_FILE",
                 "QACTUAR_ADMIN_HOST", "QACTUAR_ADMIN_PORT", "QACTUAR_ADMIN_UDS"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Ran:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main.main(["admin", *args], prog_name="qactuar")
        out, err = capsys.readouterr()
        code = exited.value.code
        return Ran(code if isinstance(code, int) else 1 if code else 0, out, err)

    return run


@pytest.fixture(params=["tcp", "unix"])
def admin(request: Any, serve: Any, tmp_path: Any) -> Iterator[Admin]:
    """The stand-in on 127.0.0.1 (``--port``) or on a Unix socket (``--uds``)."""
    standin = StandIn("brief")
    if request.param == "tcp":
        with serve(standin) as srv:
            yield Admin(standin, ["--host", "127.0.0.1", "--port", str(srv.port)])
    else:
        path = str(tmp_path / "admin.sock")
        with serve(standin, UDS=path):
            yield Admin(standin, ["--uds", path])


def test_status_prints_the_figures_and_the_processes_table(cli: Any, admin: Admin) -> None:
    ran = cli("status", *admin.where, "--token", TOKEN)
    assert (ran.code, ran.out, ran.err) == (0, STATUS, "")
    [(headers, body)] = admin.standin.recorded("GET", "/status")
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert body is None


def test_apps_and_config_print_tables(cli: Any, admin: Admin) -> None:
    assert cli("apps", *admin.where, "--token", TOKEN) == Ran(0, APPS_TABLE, "")
    assert cli("config", *admin.where, "--token", TOKEN) == Ran(0, CONFIG_TABLE, "")


def test_the_admin_apps_names_are_read_too(cli: Any, serve: Any) -> None:
    """requests_per_second, cpu_percent and GET /config's "live" (admin_standin's "app")."""
    with serve(StandIn("app")) as srv:
        where = ["--host", "127.0.0.1", "--port", str(srv.port), "--token", TOKEN]
        status = cli("status", *where)
        config = cli("config", *where)
    assert (status.code, status.err) == (0, "")
    assert "requests/s (1, 5, 15 min)      1.50 / 0.40 / 0.12\n" in status.out
    assert status.out.endswith(
        " PID  ROLE    STATE    AGE        REQUESTS  CPU %       RSS\n"
        "4100  master  ready    1 h 2 min         0    2.5  40.0 MiB\n"
        "4101  worker  serving  1 min 5 s      1241   25.0  50.0 MiB\n"
        "4102  worker  ready    5 s               7    0.1  30.0 MiB\n")
    assert config == Ran(0, CONFIG_TABLE, "")


def test_json_prints_the_servers_answer(cli: Any, admin: Admin) -> None:
    ran = cli("apps", *admin.where, "--token", TOKEN, "--json")
    assert (ran.code, json.loads(ran.out), ran.err) == (0, {"apps": APPS}, "")
    ran = cli("status", "--json", *admin.where, "--token", TOKEN)
    assert ran.code == 0
    status = json.loads(ran.out)
    assert status["totals"]["status_classes"]["2xx"] == 1206  # the first call's figures
    assert [p["pid"] for p in status["processes"]] == [4100, 4101, 4102]


@pytest.mark.parametrize(("value", "sent"), [
    ("12", 12), ("2.5", 2.5), ("true", True), ("debug", "debug"), ('"7"', "7"),
    ("null", None), ("[1, 2]", [1, 2]), ("not json {", "not json {"),
])
def test_config_set_sends_the_value_as_json_when_it_parses(
        cli: Any, admin: Admin, value: str, sent: Any) -> None:
    ran = cli("config", "set", "LOG_LEVEL", value, *admin.where, "--token", TOKEN)
    [(headers, body)] = admin.standin.recorded("PATCH", "/config")
    assert body == {"LOG_LEVEL": sent}
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    if isinstance(sent, str):
        assert (ran.code, ran.out, ran.err) == (0, f"LOG_LEVEL set to {json.dumps(sent)}\n", "")
    else:  # the stand-in checks types as the real app does
        assert (ran.code, ran.out) == (1, "")
        assert ran.err == (f"qactuar admin: PATCH /config: 400 LOG_LEVEL: expected str, "
                           f"got {json.dumps(sent)}\n")


def test_config_set_of_a_key_that_needs_a_restart_is_one_line(cli: Any, admin: Admin) -> None:
    ran = cli("config", "set", "PORT", "9000", *admin.where, "--token", TOKEN)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err == "qactuar admin: PATCH /config: 409 PORT needs a restart\n"


def test_apps_add_remove_and_reload(cli: Any, admin: Admin) -> None:
    added = cli("apps", "add", "/blog", "blog.main:app", *admin.where, "--token", TOKEN)
    assert added == Ran(0, "mounted blog.main:app at /blog\n", "")
    assert [b for _, b in admin.standin.recorded("POST", "/apps")] == [
        {"route": "/blog", "app": "blog.main:app"}]
    removed = cli("apps", *admin.where, "--token", TOKEN, "remove", "/api/v2")  # group options
    assert removed == Ran(0, "unmounted /api/v2\n", "")
    assert admin.standin.recorded("DELETE", "/apps/api/v2") != []
    missing = cli("apps", "remove", "nope", *admin.where, "--token", TOKEN)
    assert missing == Ran(1, "", "qactuar admin: DELETE /apps/nope: 404 no app is mounted "
                                 "at /nope\n")
    assert cli("reload", *admin.where, "--token", TOKEN) == Ran(0, "reloaded\n", "")
    assert len(admin.standin.recorded("POST", "/reload")) == 1
    assert cli("apps", *admin.where, "--token", TOKEN).out == (
        "ROUTE  APP            SOURCE\n"
        "/      basic:hello    config\n"
        "/blog  blog.main:app  admin\n")


def test_a_wrong_token_is_one_line_and_exit_4(cli: Any, admin: Admin) -> None:
    ran = cli("status", *admin.where, "--token", "not-the-token")
    where = (f"unix:{admin.where[1]}" if admin.where[0] == "--uds"
             else f"127.0.0.1:{admin.where[3]}")
    assert (ran.code, ran.out) == (4, "")
    assert ran.err == (f"qactuar admin: the admin socket at {where} refused the token (401 "
                       "missing or wrong token): check --token, QACTUAR_ADMIN_TOKEN or the "
                       "token file\n")
    [(headers, _)] = admin.standin.recorded("GET", "/status")
    assert headers["authorization"] == "Bearer not-the-token"


def test_a_server_error_is_one_line_and_exit_1(cli: Any, admin: Admin) -> None:
    admin.standin.failing.add("/status")
    ran = cli("status", *admin.where, "--token", TOKEN)
    assert ran == Ran(1, "", "qactuar admin: GET /status: 500 the backend raised\n")


def test_settings_and_token_come_from_the_environment_config_file_and_token_file(
        cli: Any, serve: Any, tmp_path: Any, monkeypatch: Any) -> None:
    standin = StandIn("brief")
    with serve(standin) as srv:
        monkeypatch.setenv("QACTUAR_ADMIN_PORT", str(srv.port))
        monkeypatch.setenv("QACTUAR_ADMIN_HOST", "127.0.0.1")
        monkeypatch.setenv("QACTUAR_ADMIN_TOKEN", TOKEN)
        assert cli("apps") == Ran(0, APPS_TABLE, "")
        monkeypatch.delenv("QACTUAR_ADMIN_TOKEN")
        token_file = tmp_path / "admin.token"
        token_file.write_text(TOKEN + "\n")
        (tmp_path / "conf.json").write_text(json.dumps(
            {"ADMIN_TOKEN_FILE": str(token_file), "ADMIN_PORT": 1}))
        monkeypatch.setenv("QACTUAR_CONFIG", str(tmp_path / "conf.json"))
        # the environment wins over the config file (ADMIN_PORT), as for the server
        assert cli("apps") == Ran(0, APPS_TABLE, "")
        assert [h["authorization"] for h, _ in standin.recorded("GET", "/apps")] == [
            f"Bearer {TOKEN}"] * 2
    token_file.unlink()
    ran = cli("apps")
    assert ran.code == 4
    assert ran.err == (f"qactuar admin: no admin token: pass --token or set QACTUAR_ADMIN_TOKEN "
                       f"(the token file {token_file} does not exist: the server writes it "
                       "when it generates a token)\n")


def test_a_config_file_in_the_current_directory_is_never_read(
        cli: Any, serve: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """A cloned repository's ./qactuar_config.json must not say where the token goes."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    standin = StandIn("brief")
    with serve(standin) as srv:
        (tmp_path / "qactuar_config.json").write_text(json.dumps(
            {"ADMIN_HOST": "127.0.0.1", "ADMIN_PORT": srv.port,
             "ADMIN_TOKEN_FILE": str(token_file)}))
        ran = cli("apps")
        assert standin.recorded("GET", "/apps") == []
    default = tmp_path / "run" / "qactuar" / "admin-1986.token"  # ADMIN_PORT's default
    assert ran == Ran(4, "", f"qactuar admin: no admin token: pass --token or set "
                             f"QACTUAR_ADMIN_TOKEN (the token file {default} does not exist: "
                             "the server writes it when it generates a token)\n")


@pytest.mark.parametrize("where", ["config", "environment"])
def test_a_token_goes_to_a_host_that_is_not_loopback_only_from_host(
        cli: Any, tmp_path: Any, monkeypatch: Any, where: str) -> None:
    monkeypatch.setenv("QACTUAR_ADMIN_TOKEN", TOKEN)
    if where == "config":
        (tmp_path / "conf.json").write_text(json.dumps({"ADMIN_HOST": "192.0.2.7"}))
        ran = cli("status", "--config", str(tmp_path / "conf.json"))
        source = str(tmp_path / "conf.json")
    else:
        monkeypatch.setenv("QACTUAR_ADMIN_HOST", "192.0.2.7")
        ran = cli("status")
        source = "environment QACTUAR_ADMIN_HOST"
    assert ran == Ran(2, "", f"qactuar admin: ADMIN_HOST 192.0.2.7 (from {source}) is not a "
                             "loopback address: the token is sent there only if --host names "
                             "it on the command line\n")


def test_the_token_file_the_server_writes_is_found(cli: Any, admin: Admin, tmp_path: Any,
                                                   monkeypatch: Any) -> None:
    """No --token: the file under $XDG_RUNTIME_DIR/qactuar/ named as ADMIN_TOKEN_FILE's
    doc says (admin-<port>.token; admin-<socket name>-<hash of its path>.token)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    if admin.where[0] == "--uds":
        digest = hashlib.sha256(admin.where[1].encode()).hexdigest()[:12]
        name = f"admin-admin.sock-{digest}.token"
    else:
        name = f"admin-{admin.where[3]}.token"
    (tmp_path / "run" / "qactuar").mkdir(parents=True)
    (tmp_path / "run" / "qactuar" / name).write_text(TOKEN + "\n")
    assert cli("apps", *admin.where) == Ran(0, APPS_TABLE, "")
    [(headers, _)] = admin.standin.recorded("GET", "/apps")
    assert headers["authorization"] == f"Bearer {TOKEN}"


def test_an_unreachable_admin_socket_is_one_line_and_exit_3(cli: Any, tmp_path: Any) -> None:
    with socket.socket() as bound:  # bound, never listening: a connection is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        ran = cli("status", "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN)
    assert ran == Ran(3, "", f"qactuar admin: cannot reach the admin socket at 127.0.0.1:{port}: "
                             "connection refused (is the server running with --admin?)\n")
    path = tmp_path / "gone.sock"
    ran = cli("reload", "--uds", str(path), "--token", TOKEN)
    assert ran == Ran(3, "", f"qactuar admin: cannot reach the admin socket at unix:{path}: "
                             "no such file or directory (is the server running with --admin?)\n")


def test_usage_errors_are_one_line_and_exit_2(cli: Any) -> None:
    ran = cli("apps", "add", "/blog")
    assert ran == Ran(2, "", "qactuar admin apps add: Missing argument 'APP'. (see --help)\n")
    ran = cli("apps", "bogus", "/blog")
    assert ran == Ran(2, "", "qactuar admin apps: No such command 'bogus'. (see --help)\n")
    ran = cli("status", "--port", "0")
    assert ran.code == 2 and ran.out == "" and ran.err.count("\n") == 1, ran


def test_admin_alone_prints_its_help(cli: Any) -> None:
    ran = cli()
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.startswith("Usage: qactuar admin [OPTIONS] COMMAND [ARGS]...\n")
    for command in ("apps", "config", "reload", "status"):
        assert f"\n  {command} " in ran.out


def test_the_qactuar_command_dispatches_admin(serve: Any) -> None:
    standin = StandIn("brief")
    with serve(standin) as srv:
        ran = run_qactuar("admin", "status", "--port", str(srv.port), "--host", "127.0.0.1",
                          env={"QACTUAR_ADMIN_TOKEN": TOKEN})
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, STATUS, "")
