"""Conventions users bring from uvicorn and gunicorn (issue 11): LIMIT_CONCURRENCY,
HEALTH_PATH, HEADERS (--header), --factory, --app-dir and --env-file, as a user
sees them from real processes in each model."""

from __future__ import annotations

import http.client
import signal
import tempfile
from pathlib import Path

import httpx
import pytest
from support import RawClient, exchange, run_qactuar, wait_until

from qactuar.envfile import EnvFileError, parse_env_file

MODELS = ["fork", "async", "prefork"]


def model_args(model: str) -> tuple[str, ...]:
    # one prefork worker: the limit and the drain are per process
    return ("--model", model, *(("--workers", "1") if model == "prefork" else ()))


class Held(RawClient):
    """A request to /hold, in flight until ``release``: the app has answered ``in``."""

    flag: Path


def hold(port: int) -> Held:
    client = Held(port, timeout=10)
    client.flag = Path(tempfile.mkdtemp(prefix="qt-hold-")) / "release"
    client.send(b"GET /hold?%s HTTP/1.1\r\nHost: t\r\n\r\n" % str(client.flag).encode())
    client.read_until(b"in\n")  # TimeoutError/EOFError: the held request did not start
    return client


def release(client: Held) -> None:
    client.flag.touch()
    assert b"done\n" in client.read_until(b"0\r\n\r\n")
    client.close()
    client.flag.unlink()
    client.flag.parent.rmdir()


def served_again(url: str, what: str) -> None:
    wait_until(lambda: httpx.get(url + "/", timeout=5).status_code == 200, what=what)


def get(conn: http.client.HTTPConnection, path: str, method: str = "GET"):
    conn.request(method, path)
    reply = conn.getresponse()
    return reply, reply.read()


# -- LIMIT_CONCURRENCY -------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_over_the_limit_is_503_at_once_and_served_again_after(spawn_qactuar, model):
    srv = spawn_qactuar("conventions:app", *model_args(model), "--limit-concurrency", "2")
    held = [hold(srv.port), hold(srv.port)]
    try:
        # at once: queued, it would wait for a held request (never released
        # meanwhile) and end in a ReadTimeout
        reply = httpx.get(srv.url + "/", timeout=5)
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert "concurrency limit" in reply.text
        # a WebSocket upgrade over the limit is refused the same way
        with RawClient(srv.port) as ws:
            ws.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
            answer = ws.read_until(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer
        release(held.pop())
        # one slot is free again (the fork model: once its child is reaped)
        served_again(srv.url, "a request served again after a held one left")
    finally:
        for sock in held:
            release(sock)
    assert '"GET /hold?' in srv.output()
    assert '"GET / HTTP/1.1" 503' in srv.output()  # shedding is in the access log


@pytest.mark.parametrize("model", ["fork", "async"])
def test_an_open_websocket_counts_for_its_whole_life(spawn_qactuar, model):
    from websockets.sync.client import connect

    srv = spawn_qactuar("ws:app", "--model", model, "--limit-concurrency", "1")
    with connect(f"ws://127.0.0.1:{srv.port}/echo", open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        assert httpx.get(srv.url + "/").status_code == 503
    served_again(srv.url, "a request served again after the WebSocket closed")


def upload_then_read(port: int, head: bytes, body: bytes) -> bytes:
    """Send ``head`` and all of ``body`` without reading, as curl does; then the answer
    (the server closes after it). ConnectionResetError or BrokenPipeError if the server
    closes while the body still arrives (a reset loses the answer in flight).
    """
    return exchange(port, head + body, timeout=10)


#: A body larger than what the socket buffers and the server's read-ahead hold.
UPLOAD = b"u" * 4_000_000


@pytest.mark.parametrize("model", MODELS)
def test_an_upload_over_the_limit_reads_its_503(spawn_qactuar, model):
    # The 503 is answered before the body is in: closing at once, with the
    # body still arriving, reset the connection under the client's upload
    srv = spawn_qactuar("conventions:app", *model_args(model), "--limit-concurrency", "1")
    held = hold(srv.port)
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(UPLOAD)
    try:
        for _ in range(3):
            answer = upload_then_read(srv.port, head, UPLOAD)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
            assert b"\r\nretry-after: 1\r\n" in answer.lower()
    finally:
        release(held)
    assert httpx.post(srv.url + "/", content=UPLOAD, timeout=10).text == "hello"


def test_limit_off_by_default_lets_many_in(spawn_qactuar):
    srv = spawn_qactuar("conventions:app", "--model", "async")
    held = [hold(srv.port) for _ in range(20)]
    assert httpx.get(srv.url + "/").status_code == 200
    for sock in held:
        release(sock)


# -- HEALTH_PATH -------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_health_path_while_serving_and_during_a_graceful_stop(spawn_qactuar, model):
    # fork: one child at most, so that a health answer that needed a child would wait
    srv = spawn_qactuar("conventions:app", *model_args(model), "--health-path", "/healthz",
                        "--max-processes", "1", "--graceful-timeout", "20")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    reply, body = get(conn, "/healthz")
    assert (reply.status, body) == (200, b"ok\n")
    assert reply.getheader("cache-control") == "no-store"
    assert get(conn, "/healthz", "HEAD")[0].status == 200
    assert get(conn, "/healthz?probe=1")[1] == b"ok\n"
    assert get(conn, "/healthz", "POST")[1] == b"hello"  # only GET and HEAD
    assert get(conn, "/healthz/deeper")[1] == b"hello"  # only that exact path
    assert get(conn, "/")[1] == b"hello"
    held = hold(srv.port)  # the fork model's only child is busy from now on
    try:
        # without a child: one would wait for the held request (a timeout, not ok)
        assert get(conn, "/healthz")[1] == b"ok\n"
        srv.signal(signal.SIGTERM)
        # a balancer polling on its kept-alive connection sees the stop coming
        def not_ok():
            answer = get(conn, "/healthz")
            return answer if answer[0].status != 200 else None

        reply, body = wait_until(not_ok, what="a health check other than 200 after SIGTERM")
        assert (reply.status, body) == (503, b"stopping\n")
        assert reply.getheader("connection") == "close"
    finally:
        release(held)  # the drain waited for it
    assert srv.wait(20) == 0
    output = srv.output()
    assert '"GET / HTTP/1.1" 200' in output
    # health checks leave no access-log line
    assert '"GET /healthz HTTP' not in output and '"HEAD /healthz HTTP' not in output
    assert '"POST /healthz HTTP/1.1" 200' in output


def test_health_path_is_answered_even_at_the_limit(serve):
    from apps import conventions  # type: ignore[import-not-found]

    with serve(conventions.app, HEALTH_PATH="/up", LIMIT_CONCURRENCY=1) as srv:
        held = hold(srv.port)
        assert httpx.get(srv.url + "/").status_code == 503
        assert httpx.get(srv.url + "/up").text == "ok\n"
        release(held)


# -- HEADERS -----------------------------------------------------------------------


def test_default_headers_unless_the_app_sets_them(serve):
    from apps import conventions  # type: ignore[import-not-found]

    headers = ["X-Frame-Options: DENY", "Strict-Transport-Security:max-age=63072000"]
    with serve(conventions.app, HEADERS=headers) as srv:
        plain = httpx.get(srv.url + "/")
        own = httpx.get(srv.url + "/own-header")
    assert plain.headers["x-frame-options"] == "DENY"
    assert plain.headers["strict-transport-security"] == "max-age=63072000"
    assert plain.headers["server"] == "qactuar"
    assert own.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert own.headers["strict-transport-security"] == "max-age=63072000"


def test_header_flag_in_the_fork_model_and_server_replaced(spawn_qactuar):
    srv = spawn_qactuar("conventions:app", "--model", "fork", "--header", "x-team: web",
                        "--header", "Server: edge")
    reply = httpx.get(srv.url + "/")
    assert reply.headers["x-team"] == "web"
    assert reply.headers.get_list("server") == ["edge"]


@pytest.mark.parametrize("value, words", [
    ("x-bad name: 1", "not a header name"),
    ("nocolon", "not NAME:VALUE"),
    ("content-length: 3", "written by the server"),
    ("x-a: \x01", "control character"),
])
def test_bad_header_is_refused_at_start_up(value, words):
    result = run_qactuar("conventions:app", "--header", value)
    assert result.returncode == 2
    assert "HEADERS" in result.stderr and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_headers_from_the_environment_need_json_for_commas(spawn_qactuar):
    srv = spawn_qactuar("conventions:app", env={
        "QACTUAR_HEADERS": '["cache-control: no-cache, no-store", "x-a: 1"]'})
    reply = httpx.get(srv.url + "/")
    assert reply.headers["cache-control"] == "no-cache, no-store"
    result = run_qactuar("conventions:app", env={"QACTUAR_HEADERS": "cache-control: a, b"})
    assert result.returncode == 2 and "JSON array" in result.stderr


# -- FACTORY and APP_DIR -----------------------------------------------------------


@pytest.mark.parametrize("args", [("--model", "async"),
                                  ("--model", "prefork", "--workers", "1", "--no-preload")])
def test_factory(spawn_qactuar, args):
    srv = spawn_qactuar("conventions:create_app", "--factory", *args)
    assert httpx.get(srv.url + "/").text == "hello"


@pytest.mark.parametrize("target, words", [
    ("conventions:failing_factory", "calling the app factory 'conventions:failing_factory' "
                                    "failed: RuntimeError('no database')"),
    ("conventions:not_callable", "FACTORY needs a callable"),
])
def test_factory_errors_are_one_line(target, words):
    result = run_qactuar(target, "--factory", "--model", "async")
    assert result.returncode == 2
    output = result.stdout + result.stderr  # the qt_server log
    assert words in output
    assert "Traceback" not in output


def test_factory_with_apps_is_refused(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"APPS": {"/": "conventions:create_app"}}')
    result = run_qactuar("--config", str(config), "--factory")
    assert result.returncode == 2
    assert "FACTORY applies to the app named on the command line" in result.stdout


def test_app_dir(spawn_qactuar, tmp_path):
    where = tmp_path / "src"
    where.mkdir()
    (where / "appdir_only.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': b'from app-dir'})\n")
    srv = spawn_qactuar("appdir_only:app", "--app-dir", str(where), "--model", "async",
                        cwd=str(tmp_path))
    assert httpx.get(srv.url + "/").text == "from app-dir"
    result = run_qactuar("appdir_only:app", "--app-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "APP_DIR" in result.stderr and "not a directory" in result.stderr


# -- --env-file --------------------------------------------------------------------


def test_env_file_sets_settings_and_the_apps_environment(spawn_qactuar, tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "# settings and the app's own variables\n"
        "QACTUAR_HEALTH_PATH=/up\n"
        "export GREETING='hello there'  # a comment\n"
        "ALREADY=from the file\n")
    srv = spawn_qactuar("conventions:app", "--model", "fork", "--env-file", str(env_file),
                        env={"ALREADY": "from the environment"})
    assert httpx.get(srv.url + "/up").text == "ok\n"
    assert httpx.get(srv.url + "/env?GREETING").text == "hello there"
    assert httpx.get(srv.url + "/env?ALREADY").text == "from the environment"


def test_env_file_error_names_file_and_line(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("A=1\n\nthis is not an assignment\n")
    result = run_qactuar("conventions:app", "--env-file", str(env_file))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"qactuar: --env-file {env_file}, line 3: expected KEY=VALUE, "
        "got 'this is not an assignment'")
    missing = run_qactuar("conventions:app", "--env-file", str(tmp_path / "none.env"))
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr


def test_env_file_syntax(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        'PLAIN=a b  \n'
        "SINGLE='$no \\n escapes # kept'\n"
        'DOUBLE="line one\\nline \\"two\\""\n'
        'MULTI="first\nsecond"\n'
        "export\tEXPORTED=1\n"
        "EMPTY=\n"
        "HASH=a#b # comment\n"
        "   # indented comment\n")
    assert parse_env_file(str(path)) == {
        "PLAIN": "a b",
        "SINGLE": "$no \\n escapes # kept",
        "DOUBLE": 'line one\nline "two"',
        "MULTI": "first\nsecond",
        "EXPORTED": "1",
        "EMPTY": "",
        "HASH": "a#b",
    }
    for text, line in [("A='open\n", 1), ('B=1\nC="open\n', 2), ("D='x' tail\n", 1),
                       ("=novalue\n", 1)]:
        path.write_text(text)
        with pytest.raises(EnvFileError, match=f"line {line}:"):
            parse_env_file(str(path))

