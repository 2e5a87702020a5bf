"""The CLI and programmatic entry points (issue 3, item 7)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import httpx
import pytest
from apps import basic  # type: ignore[import-not-found]
from support import APPS, Spawned, model_args, qactuar_env, run_qactuar, start_program

from qactuar import Config, Server


def test_help_documents_every_option():
    result = run_qactuar("--help")
    assert result.returncode == 0
    text = result.stdout
    assert "Usage:" in text
    defaults = Config()
    for f in fields(Config):
        if isinstance(getattr(defaults, f.name), dict):
            continue  # APPS and LOGS come only from the config file
        flag = "--" + f.name.lower().replace("_", "-")
        assert flag in text, f"{f.name} has no {flag} in --help"
        # the option's help text is there too (click may wrap it)
        first_word = f.metadata["doc"].split()[0]
        assert first_word in text
    for flag in ("--config", "--host", "--port", "--model", "--log-level", "--root-path",
                 "--lifespan", "--loop", "--no-access-log", "--version"):
        assert flag in text


def test_version():
    result = run_qactuar("--version")
    assert result.returncode == 0
    assert "qactuar" in result.stdout


@pytest.mark.parametrize(
    "target, words",
    [
        ("nosuchmodule:app", "nosuchmodule"),
        ("basic:missing", "missing"),
        ("basic:not_an_app", "not_an_app"),
        ("basic", "module:attribute"),
        ("broken_import:app", "no_such_dependency"),
        ("missingdep_app:app", "importing 'missingdep_app' failed"),
        ("apps_pkg_missing.sub:app", "no module named 'apps_pkg_missing'"),
    ],
)
def test_import_errors_are_one_line(target, words):
    result = run_qactuar(target, "--port", "0")
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2  # README: an app that cannot be imported exits 2
    assert "Traceback" not in output
    lines = output.splitlines()
    assert len(lines) == 1, lines
    assert target in lines[0]
    assert words in lines[0]


@pytest.mark.parametrize("model", ["fork", "async", "prefork"])
@pytest.mark.parametrize("target", ["nosuchmodule:app", "broken_import:app", "basic:hello"])
def test_an_app_that_cannot_be_imported_exits_2_in_every_model(model, target):
    # README: an import error, or a --factory that is not callable, is one
    # line and status 2, in every model (prefork checks it in the master)
    args = ("--factory",) if target == "basic:hello" else ()
    result = run_qactuar(target, *args, *model_args(model), "--port", "0")
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert target in output


def test_no_app_and_no_apps_is_an_error(tmp_path):
    result = run_qactuar("--port", "0", cwd=str(tmp_path))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2
    assert len(output.splitlines()) == 1
    assert "APPS" in output


def test_no_argument_serves_the_config_apps(spawn_qactuar, tmp_path):
    (tmp_path / "qactuar_config.json").write_text('{"APPS": {"/": "basic:hello"}}')
    proc = spawn_qactuar(cwd=str(tmp_path))
    assert httpx.get(proc.url + "/", timeout=5).text == "Hello, world!"


def test_app_module_in_the_current_directory(spawn_qactuar, tmp_path):
    # PYTHONSAFEPATH (-P): Python itself does not put the cwd on sys.path (as
    # with the console script): qactuar does
    (tmp_path / "cwd_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from cwd'})\n"
    )
    proc = spawn_qactuar("cwd_app:app", cwd=str(tmp_path), env={"PYTHONSAFEPATH": "1"})
    assert httpx.get(proc.url + "/", timeout=5).text == "from cwd"


def test_address_in_use_is_one_line(spawn_qactuar):
    first = spawn_qactuar("basic:hello")
    result = run_qactuar("basic:hello", "--host", "127.0.0.1", "--port", str(first.port))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1  # README: an address that cannot be bound exits 1
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert f"cannot listen on 127.0.0.1:{first.port}: Address already in use" in output
    assert "[Errno" not in output


@pytest.fixture
def spawn_script(tmp_path: Any) -> Iterator[Callable[..., Spawned]]:
    """``spawn_script(code, cwd=None)``: ``python -c code`` serving on a port of its own
    choosing (``port=0``: its port read from its ``Listening on`` line); all are stopped."""
    started: list[Spawned] = []

    def spawn(code: str, cwd: str | None = None) -> Spawned:
        log_path = str(tmp_path / f"script-{len(started)}.log")
        open(log_path, "w").close()

        def listening() -> bool:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                return "Listening on" in fh.read()

        proc = start_program([sys.executable, "-c", code], log_path, listening,
                             "the script's server to listen", cwd=cwd or APPS,
                             env=qactuar_env())
        started.append(Spawned(proc, 0, log_path))
        return started[-1]

    yield spawn
    for spawned in started:
        spawned.stop()


@pytest.mark.parametrize("app", ["basic.hello", "'basic:hello'"])
def test_run_serves_programmatically(spawn_script, app):
    proc = spawn_script(f"import basic, qactuar\nqactuar.run({app}, host='127.0.0.1', port=0)\n")
    assert httpx.get(proc.url + "/", timeout=5).text == "Hello, world!"
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_run_reads_the_config_file_under_its_arguments(spawn_script, tmp_path):
    (tmp_path / "qactuar_config.json").write_text(
        '{"ROOT_PATH": "/file", "PORT": 1, "HOST": "192.0.2.1"}')
    proc = spawn_script(
        "import basic, qactuar\nqactuar.run(basic.echo, host='127.0.0.1', port=0)\n",
        cwd=str(tmp_path))
    assert proc.host == "127.0.0.1"
    report = httpx.get(proc.url + "/x", timeout=5).json()
    assert report["root_path"] == "/file"


def test_run_with_a_config_object(spawn_script):
    proc = spawn_script(
        "import basic, qactuar\n"
        "conf = qactuar.Config(HOST='127.0.0.1', PORT=0, ROOT_PATH='/conf')\n"
        "qactuar.run(app=basic.echo, conf=conf)\n")
    assert proc.host == "127.0.0.1"
    report = httpx.get(proc.url + "/x", timeout=5).json()
    assert report["root_path"] == "/conf"


def test_server_embedded_in_a_running_loop_with_its_own_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    async def main() -> tuple[int, str, bool]:
        server = Server(basic.echo, Config())
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.wait_for(server.started.wait(), 5)
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{port}/embedded")
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        return response.status_code, response.json()["path"], task.done()

    try:
        status, path, finished = asyncio.run(main())
    finally:
        sock.close()
    assert (status, path, finished) == (200, "/embedded", True)


def test_run_refuses_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-c", "import basic, qactuar\nqactuar.run(basic.hello, port=-3)\n"],
        env=qactuar_env(), cwd=APPS, capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "PORT" in lines[0] and "-3" in lines[0] and "run()" in lines[0]


def test_run_names_a_config_object_as_the_source():
    code = ("import basic, qactuar\n"
            "logs = {'version': 1, 'handlers': {'h': {'class': 'no_such_mod.Handler'}}}\n"
            "qactuar.run(basic.hello, conf=qactuar.Config(LOGS=logs))\n")
    result = subprocess.run([sys.executable, "-c", code], env=qactuar_env(), capture_output=True,
                            text=True, timeout=20, cwd=APPS)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "LOGS" in lines[0] and "(from Config())" in lines[0] and "no_such_mod" in lines[0]
