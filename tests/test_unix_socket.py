"""Unix listening sockets: the file is removed at a clean stop (by the process that
created it, if still that file), a live server's socket is never taken (start-up
fails as on a busy TCP port), a stale one is replaced, anything else refused.

Every model, and ``--reload``, whose supervisor binds the sockets; with real
processes. ``--uds`` and ``--bind unix:`` take the same path through the code
(both tested where it is cheap).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from support import Spawned, run_qactuar

from qactuar import Config
from qactuar.addresses import Address
from qactuar.server.sockets import BindError, bind_address, remove_unix_socket

#: How each "model" is run: prefork with one worker; reload serving async.
MODEL_ARGS = {
    "fork": ("--model", "fork"),
    "async": ("--model", "async"),
    "prefork": ("--model", "prefork", "--workers", "1"),
    "reload": ("--model", "async", "--reload"),
}
MODELS = list(MODEL_ARGS)


def model_args(model: str, tmp_path: Path) -> tuple[str, ...]:
    extra = ("--reload-dir", str(tmp_path)) if model == "reload" else ()
    return (*MODEL_ARGS[model], "--graceful-timeout", "2", *extra)


def get_unix(path: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        return client.get("http://qactuar/")


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    return output


def stale_socket(path: str) -> None:
    """A socket file nobody listens on, as a crashed server leaves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)


@pytest.mark.parametrize("form", ["uds", "bind"])
@pytest.mark.parametrize("model", MODELS)
def test_a_clean_stop_removes_the_socket_file(model, form, spawn_qactuar, tmp_path):
    path = str(tmp_path / "app.sock")
    where = ("--uds", path) if form == "uds" else ("--bind", f"unix:{path}")
    server = spawn_qactuar("basic:hello", *model_args(model, tmp_path), *where)
    assert get_unix(path).text == "Hello, world!"
    assert get_unix(path).text == "Hello, world!"  # a served request (a fork child) left it
    server.stop()
    assert server.proc.returncode == 0, server.output()[-2000:]
    assert not os.path.exists(path), server.output()[-2000:]


@pytest.mark.parametrize("model", MODELS)
def test_a_second_server_on_a_live_path_fails_and_the_first_still_answers(
    model, spawn_qactuar, tmp_path
):
    path = str(tmp_path / "app.sock")
    spawn_qactuar("basic:hello", *model_args(model, tmp_path), "--bind", f"unix:{path}")
    inode = os.stat(path).st_ino
    second = run_qactuar("basic:hello", *model_args(model, tmp_path), "--uds", path)
    assert second.returncode == 1
    assert f"cannot listen on unix:{path}: Address already in use" in one_line(second)
    assert os.stat(path).st_ino == inode  # the first server's file, untouched
    assert get_unix(path).text == "Hello, world!"


@pytest.mark.parametrize("model", MODELS)
def test_a_stale_socket_file_is_replaced(model, spawn_qactuar, tmp_path):
    path = str(tmp_path / "app.sock")
    stale_socket(path)
    with pytest.raises(ConnectionRefusedError), socket.socket(socket.AF_UNIX) as probe:
        probe.connect(path)
    server = spawn_qactuar("basic:hello", *model_args(model, tmp_path), "--uds", path)
    assert get_unix(path).text == "Hello, world!"
    assert f"Replacing the stale socket {path} (nothing listens on it)" in server.output()


@pytest.mark.parametrize("model", MODELS)
def test_a_regular_file_at_the_path_is_refused(model, tmp_path):
    path = tmp_path / "app.sock"
    path.write_text("not a socket")
    result = run_qactuar("basic:hello", *model_args(model, tmp_path), "--bind", f"unix:{path}")
    assert result.returncode == 1
    assert (f"cannot listen on unix:{path}: the path exists and is not a socket "
            "(refusing to replace it)") in one_line(result)
    assert path.read_text() == "not a socket"


def test_a_prefork_worker_leaving_keeps_the_masters_socket_file(spawn_qactuar, tmp_path):
    path = str(tmp_path / "app.sock")
    server: Spawned = spawn_qactuar("basic:hello", *model_args("prefork", tmp_path),
                                    "--max-requests", "1", "--uds", path)
    inode = os.stat(path).st_ino
    for served in range(1, 4):
        assert get_unix(path).text == "Hello, world!"
        # the worker that served it goes, another replaces it (the old one
        # gone first: a retiring worker serves on until its replacement does,
        # and a request it took would start no other)
        server.wait_for_log("Started worker", count=served + 1)
        server.wait_for_log("stopped after", count=served)
    assert os.stat(path).st_ino == inode
    assert get_unix(path).text == "Hello, world!"


def bound(path: str) -> socket.socket:
    return bind_address(Address("unix", path=path), Config())


def test_a_socket_file_another_server_took_over_is_not_removed(tmp_path):
    path = str(tmp_path / "app.sock")
    ours = bound(path)
    ours.close()  # stopped listening: stale to a newcomer, who replaces it
    os.unlink(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as newcomer:
        newcomer.bind(path)  # often with our file's old inode number
        newcomer.listen()
        remove_unix_socket(path)  # at our exit: the newcomer's file is left alone
        assert os.path.exists(path)


def test_a_file_put_in_its_place_is_not_removed(tmp_path):
    path = tmp_path / "app.sock"
    bound(str(path)).close()
    path.unlink()
    path.write_text("someone's file")  # often with our file's old inode number
    remove_unix_socket(str(path))
    assert path.read_text() == "someone's file"


def test_a_socket_file_is_removed_only_by_the_process_that_bound_it(tmp_path):
    path = str(tmp_path / "app.sock")
    bound(path).close()  # as at a stop: closed, then removed
    pid = os.fork()
    if pid == 0:  # a child (a fork model's, a worker) removing it would take it from all
        remove_unix_socket(path)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert os.path.exists(path)
    remove_unix_socket(path)
    assert not os.path.exists(path)


def test_the_probe_refuses_what_it_cannot_connect_to(tmp_path, monkeypatch):
    path = str(tmp_path / "app.sock")
    stale_socket(path)
    real_connect = socket.socket.connect

    def denied(self: socket.socket, address: object) -> None:
        if address == path:
            raise PermissionError(13, "Permission denied")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", denied)
    with pytest.raises(BindError) as caught:
        bound(path)
    assert caught.value.strerror == (f"cannot listen on unix:{path}: cannot tell whether a "
                                     "server listens on it (Permission denied)")
    assert os.path.exists(path)

