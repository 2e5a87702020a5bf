"""``--reload``: a module of the served app is edited and the new code answers,
in each model; code that does not import is one line and the last good code
goes on serving; stopping the supervisor leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest
from support import APPS, ROOT, TESTS, model_args, qactuar_env, wait_until

MODELS = ["fork", "async", "prefork"]
QACTUAR_ARGS = ("--graceful-timeout", "2")

APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": %r})
'''


def write_app(path: Any, body: bytes) -> None:
    path.write_text(APP % body)


def body(url: str) -> bytes | None:
    try:
        return httpx.get(url, timeout=5).content
    except httpx.HTTPError:
        return None


def server_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"Reload: server (\d+) loaded the code", output)]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[1].startswith("Z")  # a zombie has ended
    except OSError:
        return True


@pytest.mark.parametrize("model", MODELS)
def test_an_edit_is_served_and_a_syntax_error_keeps_the_last_good_code(
    model, spawn_qactuar, tmp_path
):
    module = tmp_path / "reloaded.py"
    write_app(module, b"one")
    server = spawn_qactuar("reloaded:app", *model_args(model), "--reload",
                           "--reload-dir", str(tmp_path), cwd=str(tmp_path))
    wait_until(lambda: body(server.url) == b"one", 15, what="the first code answers")

    write_app(module, b"second")
    seen: list[bytes | None] = []

    def second() -> bool:
        seen.append(body(server.url))
        return seen[-1] == b"second"

    wait_until(second, 10, what="the edited code answers")
    assert set(seen) <= {b"one", b"second"}  # no request fails while the server restarts

    module.write_text(APP.replace("async def app(", "async def app((") % b"broken")
    server.wait_for_log("Reload: the code does not load")
    output = server.output()
    [line] = [line for line in output.splitlines() if "Cannot load app" in line]
    assert "SyntaxError" in line and "reloaded.py" in line
    assert "Traceback" not in output
    assert "the previous code goes on serving" in output
    assert body(server.url) == b"second"  # the last good code goes on serving

    write_app(module, b"third!")
    wait_until(lambda: body(server.url) == b"third!", 10, what="the fixed code answers")
    assert server.proc.poll() is None

    server.signal(signal.SIGINT)
    assert server.wait(20) == 0
    for pid in server_pids(server.output()):
        wait_until(lambda pid=pid: gone(pid), 10, what=f"server {pid} has ended")


def test_only_watched_files_restart_the_server(spawn_qactuar, tmp_path):
    module = tmp_path / "reloaded.py"
    write_app(module, b"one")
    server = spawn_qactuar("reloaded:app", "--model", "async", "--reload",
                           "--reload-include", "*.html", "--reload-exclude", "skip_*.py",
                           cwd=str(tmp_path))  # RELOAD_DIR: the current directory
    wait_until(lambda: body(server.url) == b"one", 15, what="the first code answers")
    (tmp_path / "notes.txt").write_text("not watched")
    (tmp_path / "skip_me.py").write_text("x = 1")
    (tmp_path / "page.html").write_text("<p>watched</p>")
    server.wait_for_log("page.html changed")  # the .html file restarts
    assert "notes.txt" not in server.output() and "skip_me.py" not in server.output()


def test_a_killed_supervisor_leaves_no_server_behind(spawn_qactuar, tmp_path):
    write_app(tmp_path / "reloaded.py", b"one")
    server = spawn_qactuar("reloaded:app", "--model", "prefork", "--reload", cwd=str(tmp_path))
    wait_until(lambda: body(server.url) == b"one", 15, what="the first code answers")
    [master] = wait_until(lambda: server_pids(server.output()), 5, what="the supervisor's log")
    server.signal(signal.SIGKILL)
    server.wait(5)
    wait_until(lambda: gone(master), 15, what="the server stops when its supervisor dies")


def run_script(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=qactuar_env(env),
                          capture_output=True, text=True, timeout=20, cwd=APPS,
                          stdin=subprocess.DEVNULL, start_new_session=True)


def test_reload_refuses_an_app_object():
    result = run_script("import qactuar, basic; qactuar.run(basic.hello, reload=True)")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "qactuar: config RELOAD=True (from run() arguments): needs the app as a "
        "'module:attribute' string (or APPS), not an app object: each restart imports it afresh"
    ]


def test_reload_without_watchfiles_is_one_line(tmp_path):
    (tmp_path / "watchfiles.py").write_text("raise ImportError('not installed')\n")
    result = run_script(
        "import sys; from qactuar.cli import main; sys.argv[1:] = ['basic:hello', '--reload']; "
        "main()", env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{TESTS}/apps{os.pathsep}{ROOT}"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "qactuar: config RELOAD=True (from command line): needs the watchfiles package: "
        "pip install 'qactuar[reload]'"
    ]


@pytest.mark.parametrize("args, message", [
    (("--reload-dir", "/nonexistent/dir"), "RELOAD_DIR=['/nonexistent/dir'] (from command line): "
                                          "'/nonexistent/dir' is not a directory"),
    (("--model", "prefork", "--reuse-port"), "REUSE_PORT=True (from command line): cannot be "
                                             "used with RELOAD"),
])
def test_reload_settings_it_cannot_use_are_one_line(args, message):
    result = run_script("import sys; from qactuar.cli import main; "
                        f"sys.argv[1:] = ['basic:hello', '--reload', *{list(args)!r}]; main()")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert message in line, line


def test_reload_serves_the_config_apps_too(spawn_qactuar, tmp_path):
    write_app(tmp_path / "reloaded.py", b"one")
    (tmp_path / "qactuar_config.json").write_text(json.dumps(
        {"APPS": {"/api": "reloaded:app", "/": "basic:hello"}, "MODEL": "async"}))
    server = spawn_qactuar("--reload", cwd=str(tmp_path))
    wait_until(lambda: body(server.url + "/api/") == b"one", 15, what="the first code answers")
    write_app(tmp_path / "reloaded.py", b"second")
    wait_until(lambda: body(server.url + "/api/") == b"second", 10, what="the edited code answers")
    assert body(server.url + "/") == b"Hello, world!"
