"""The CLI and programmatic entry points (issue 3, item 7)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import fields

import httpx
import pytest
from apps import basic  # type: ignore[import-not-found]
from conftest import free_port, stop_process, wait_for_port
from test_config import ROOT, TESTS, run_qactuar

from qactuar import Config, Server

#: KEEP_ALIVE_TIMEOUT 1 s for every server spawn_qactuar starts here (see conftest).
QACTUAR_ARGS = ("--keep-alive-timeout", "1")


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
    result = run_qactuar(target, *args, "--model", model, "--workers", "1", "--port", "0")
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


def test_app_module_in_the_current_directory(tmp_path):
    # -P: Python itself does not put the cwd on sys.path (as with the console script)
    (tmp_path / "cwd_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from cwd'})\n"
    )
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("QACTUAR_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "qactuar", "cwd_app:app", "--host", "127.0.0.1",
         "--port", str(port)], cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "from cwd"
    finally:
        stop_process(proc, 10)


def test_address_in_use_is_one_line(spawn_qactuar):
    first = spawn_qactuar("basic:hello")
    result = run_qactuar("basic:hello", "--host", "127.0.0.1", "--port", str(first.port))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1  # README: an address that cannot be bound exits 1
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert f"cannot listen on 127.0.0.1:{first.port}: Address already in use" in output
    assert "[Errno" not in output


def spawn_script(code: str, port: int, cwd: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.path.join(TESTS, "apps") + os.pathsep + ROOT)
    env.pop("QACTUAR_CONFIG", None)
    return subprocess.Popen([sys.executable, "-c", code], env=env,
                            cwd=cwd or os.path.join(TESTS, "apps"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("app", ["basic.hello", "'basic:hello'"])
def test_run_serves_programmatically(app):
    port = free_port()
    proc = spawn_script(
        f"import basic, qactuar\nqactuar.run({app}, host='127.0.0.1', port={port})\n", port)
    try:
        wait_for_port(port, proc)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, world!"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_run_reads_the_config_file_under_its_arguments(tmp_path):
    port = free_port()
    (tmp_path / "qactuar_config.json").write_text(
        '{"ROOT_PATH": "/file", "PORT": 1, "HOST": "192.0.2.1"}')
    proc = spawn_script(
        f"import basic, qactuar\nqactuar.run(basic.echo, host='127.0.0.1', port={port})\n",
        port, cwd=str(tmp_path))
    try:
        wait_for_port(port, proc)
        report = httpx.get(f"http://127.0.0.1:{port}/x", timeout=5).json()
        assert report["root_path"] == "/file"
    finally:
        stop_process(proc, 10)


def test_run_with_a_config_object():
    port = free_port()
    proc = spawn_script(
        "import basic, qactuar\n"
        f"conf = qactuar.Config(HOST='127.0.0.1', PORT={port}, ROOT_PATH='/conf')\n"
        "qactuar.run(app=basic.echo, conf=conf)\n", port)
    try:
        wait_for_port(port, proc)
        report = httpx.get(f"http://127.0.0.1:{port}/x", timeout=5).json()
        assert report["root_path"] == "/conf"
    finally:
        stop_process(proc, 10)


def test_server_embedded_in_a_running_loop_with_its_own_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    async def main() -> tuple[int, str, bool]:
        server = Server(basic.echo, Config(KEEP_ALIVE_TIMEOUT=0.8))
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
    env = dict(os.environ, PYTHONPATH=os.path.join(TESTS, "apps") + os.pathsep + ROOT)
    result = subprocess.run(
        [sys.executable, "-c", "import basic, qactuar\nqactuar.run(basic.hello, port=-3)\n"],
        env=env, cwd=os.path.join(TESTS, "apps"), capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "PORT" in lines[0] and "-3" in lines[0] and "run()" in lines[0]


def test_run_names_a_config_object_as_the_source():
    env = dict(os.environ, PYTHONPATH=os.path.join(TESTS, "apps") + os.pathsep + ROOT)
    env.pop("QACTUAR_CONFIG", None)
    code = ("import basic, qactuar\n"
            "logs = {'version': 1, 'handlers': {'h': {'class': 'no_such_mod.Handler'}}}\n"
            "qactuar.run(basic.hello, conf=qactuar.Config(LOGS=logs))\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=20, cwd=os.path.join(TESTS, "apps"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "LOGS" in lines[0] and "(from Config())" in lines[0] and "no_such_mod" in lines[0]
