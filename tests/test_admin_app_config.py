"""GET/PATCH /config and POST /config/save through a real socket, over a FakeBackend."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from typing import Any

import httpx
import pytest
from support.adminfake import LIVE, TOKEN, FakeBackend, assert_no_token, serve_admin
from tlscerts import Certs

from qactuar.config import Config, load_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        assert_no_token(record.getMessage())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QACTUAR_* variable of the test's environment in the configs loaded here."""
    for name in list(os.environ):
        if name.startswith("QACTUAR_"):
            monkeypatch.delenv(name)


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers=AUTH)


def test_get_config_masks_secrets_and_names_the_live_keys() -> None:
    config = Config()
    config.update({"ADMIN_TOKEN": TOKEN, "REQUEST_TIMEOUT": 7}, "test")
    with serve_admin(FakeBackend(config)) as srv, client(srv.url) as c:
        answer = c.get("/config")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["config"]["ADMIN_TOKEN"] == "********"
        assert body["config"]["SSL_KEYFILE_PASSWORD"] == ""  # not set: nothing to hide
        assert body["config"]["REQUEST_TIMEOUT"] == 7.0
        assert body["live"] == sorted(LIVE)
        assert body["file"] is None
        assert_no_token(answer.text)


def test_credentials_inside_logs_are_masked_and_the_token_file_path_is_not() -> None:
    config = Config()
    mail = {"class": "logging.handlers.SMTPHandler", "mailhost": "localhost",
            "fromaddr": "a@example.org", "toaddrs": ["b@example.org"], "subject": "qt",
            "credentials": ["mailer", "hunter2-pw"]}
    http = {"class": "logging.handlers.HTTPHandler", "host": "localhost", "url": "/log",
            "secret_key": "hunter3-key", "api_token": "hunter4-tok", "password": ""}
    config.update({"LOGS": {"version": 1, "handlers": {"mail": mail, "http": http}},
                   "ADMIN_TOKEN_FILE": "/run/qt/admin.token"}, "test")
    with serve_admin(FakeBackend(config)) as srv, client(srv.url) as c:
        for path in ("/config", "/status"):
            answer = c.get(path)
            assert answer.status_code == 200
            shown = answer.json()["config"]
            handlers = shown["LOGS"]["handlers"]
            assert handlers["mail"]["credentials"] == "********"
            assert handlers["mail"]["mailhost"] == "localhost"
            assert handlers["http"] == {**http, "secret_key": "********",
                                        "api_token": "********"}  # "" hides nothing
            assert shown["ADMIN_TOKEN_FILE"] == "/run/qt/admin.token"
            assert "hunter" not in answer.text


def test_a_save_that_cannot_write_names_the_file_and_the_error(
        tmp_path: Any, clean_env: None) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    path = folder / "conf.json"
    write(path, {"REQUEST_TIMEOUT": 5})
    backend = FakeBackend(load_config(str(path)))
    path.unlink()
    folder.rmdir()  # (as root, a read-only folder would not stop the write)
    with serve_admin(backend) as srv, client(srv.url) as c:
        answer = c.post("/config/save")
        assert (answer.status_code, answer.json()) == (
            500, {"error": f"cannot write {path}: No such file or directory"})


@pytest.mark.parametrize("body, status, words", [
    ({"NO_SUCH_KEY": 1}, 400, ["unknown setting 'NO_SUCH_KEY'"]),
    ({"request_timeout": 1}, 400, ["unknown setting 'request_timeout'"]),
    ({"REQUEST_TIMEOUT": "abc"}, 400, ["REQUEST_TIMEOUT='abc'", "expected a number"]),
    ({"REQUEST_TIMEOUT": True}, 400, ["REQUEST_TIMEOUT=True", "expected a number"]),
    ({"MAX_PROCESSES": 2.5}, 400, ["MAX_PROCESSES=2.5", "expected an integer"]),
    ({"REQUEST_TIMEOUT": -1}, 400, ["REQUEST_TIMEOUT=-1", "must be at least 0"]),
    ({"LOG_LEVEL": "loud"}, 400, ["LOG_LEVEL='loud'", "must be one of"]),
    ({"HEADERS": ["X-A: 1", 2]}, 400, ["HEADERS=", "expected a list of strings"]),
    ({"MAX_WEBSOCKETS": 600}, 400, ["MAX_WEBSOCKETS=600", "must be below MAX_PROCESSES"]),
    ({"ACCESS_LOG": False, "PORT": 9000}, 409, ["PORT cannot change while the server runs"]),
    ({"ADMIN_ALLOW_INSTALL": True}, 409, ["ADMIN_ALLOW_INSTALL changes only with a restart"]),
    ({}, 400, ["names no setting"]),
])
def test_a_bad_patch_is_refused_naming_key_value_and_problem(
        body: dict[str, Any], status: int, words: list[str]) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv, client(srv.url) as c:
        answer = c.patch("/config", json=body)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/json"
        for word in words:
            assert word in answer.json()["error"]
    assert backend.calls == []
    assert backend.config.REQUEST_TIMEOUT == 5.0


@pytest.mark.parametrize("raw, status, words", [
    (b"{", 400, "invalid JSON at line 1 column 2"),
    (b"[1, 2]", 400, "expected a JSON object, got list"),
    (b"", 400, "the body is empty"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b'{"ACCESS_LOG": false, "x": "' + b"a" * 70_000 + b'"}', 413, "larger than 65536 bytes"),
])
def test_a_patch_body_that_is_not_a_json_object(raw: bytes, status: int, words: str) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv, client(srv.url) as c:
        answer = c.patch("/config", content=raw)
        assert answer.status_code == status
        assert words in answer.json()["error"]
        # without a Content-Length, the cap holds as the body streams in
        chunked = c.patch("/config", content=iter([raw[:10], raw[10:]]))
        assert chunked.status_code == status
    assert backend.calls == []


def test_a_patch_applies_checked_values_and_logs_who_what_old_new(
        caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    certs = Certs(tmp_path)  # a key password needs a key
    config = Config()
    config.update({"SSL_CERT_PATH": certs.server_pem, "SSL_KEY_PATH": certs.server_pem}, "test")
    backend = FakeBackend(config)
    with serve_admin(backend) as srv, client(srv.url) as c:
        answer = c.patch("/config", json={"REQUEST_TIMEOUT": 2, "ACCESS_LOG": False,
                                          "SSL_KEYFILE_PASSWORD": "hunter2-secret"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    # values as Config holds them (an int timeout is a float), through the backend
    assert backend.calls == [("apply_config", {"REQUEST_TIMEOUT": 2.0, "ACCESS_LOG": False,
                                               "SSL_KEYFILE_PASSWORD": "hunter2-secret"})]
    assert body["changed"]["REQUEST_TIMEOUT"] == {"old": 5.0, "new": 2.0}
    assert body["changed"]["SSL_KEYFILE_PASSWORD"] == {"old": "", "new": "********"}
    assert body["config"]["REQUEST_TIMEOUT"] == 2.0
    lines = [r.getMessage() for r in caplog.records
             if r.name == "qt_server" and r.getMessage().startswith("admin: config")]
    assert len(lines) == 3
    assert lines[0].startswith("admin: config REQUEST_TIMEOUT 5.0 -> 2.0, by 127.0.0.1:")
    assert lines[0].endswith("(token)")
    assert "ACCESS_LOG True -> False" in lines[1]
    assert "SSL_KEYFILE_PASSWORD '' -> '********'" in lines[2]
    assert "hunter2" not in caplog.text and "hunter2" not in json.dumps(body)


@pytest.mark.parametrize("value, problem", [
    (["hunter2"], "expected a string"),
    ("hunter2", "needs SSL_CERT_PATH as well"),  # a check across settings (check_config)
])
def test_a_secret_with_a_bad_value_is_masked_in_the_refusal(value: Any, problem: str) -> None:
    with serve_admin(FakeBackend()) as srv, client(srv.url) as c:
        answer = c.patch("/config", json={"SSL_KEYFILE_PASSWORD": value})
        assert answer.status_code == 400
        assert answer.json()["error"] == (
            f"config SSL_KEYFILE_PASSWORD='********' (from PATCH /config): {problem}")
        assert "hunter2" not in answer.text


def write(path: Any, data: dict[str, Any]) -> str:
    text = json.dumps(data, indent=4) + "\n"
    path.write_text(text)
    return text


def every_setting(config: Config) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(Config)}


def test_save_writes_the_config_in_force_atomically_keeping_a_backup(
        tmp_path: Any, clean_env: None, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "qactuar.json"
    original = write(path, {"port": 8123, "ASYNCRONOUS_MODEL": 2, "REQUEST_TIMEOUT": 5,
                            "HEADERS": ["X-Team: web"]})
    os.chmod(path, 0o640)
    config = load_config(str(path))
    backend = FakeBackend(config)
    with serve_admin(backend) as srv, client(srv.url) as c:
        assert c.patch("/config", json={"REQUEST_TIMEOUT": 2.5,
                                        "MAX_PROCESSES": 50}).status_code == 200
        answer = c.post("/config/save")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"saved": str(path), "backup": str(path) + ".bak",
                                 "keys": ["PORT", "MODEL", "REQUEST_TIMEOUT", "HEADERS",
                                          "MAX_PROCESSES"]}
    # the file's keys in its order, then the changed ones; the old file kept as .bak
    assert json.loads(path.read_text()) == {
        "PORT": 8123, "MODEL": "async", "REQUEST_TIMEOUT": 2.5, "HEADERS": ["X-Team: web"],
        "MAX_PROCESSES": 50}
    assert (tmp_path / "qactuar.json.bak").read_text() == original
    assert sorted(os.listdir(tmp_path)) == ["qactuar.json", "qactuar.json.bak"]
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert every_setting(load_config(str(path))) == every_setting(backend.config)
    assert any(r.getMessage().startswith(f"admin: config saved to {path} (5 settings), by "
                                         "127.0.0.1:") for r in caplog.records)


def test_save_twice_keeps_the_previous_save_as_backup(tmp_path: Any, clean_env: None) -> None:
    path = tmp_path / "conf.json"
    write(path, {"REQUEST_TIMEOUT": 5})
    backend = FakeBackend(load_config(str(path)))
    with serve_admin(backend) as srv, client(srv.url) as c:
        assert c.patch("/config", json={"REQUEST_TIMEOUT": 1}).status_code == 200
        assert c.post("/config/save").status_code == 200
        first = path.read_text()
        assert c.patch("/config", json={"REQUEST_TIMEOUT": 3}).status_code == 200
        assert c.post("/config/save").status_code == 200
    assert (tmp_path / "conf.json.bak").read_text() == first
    assert json.loads(path.read_text()) == {"REQUEST_TIMEOUT": 3.0}
    assert sorted(os.listdir(tmp_path)) == ["conf.json", "conf.json.bak"]


def _saved_with_the_environments_token(
        path: Any, held: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Config:
    """``POST /config/save`` of a server whose file holds ``held`` and whose
    ADMIN_TOKEN comes from the environment; returns the config it ran with."""
    write(path, held)
    monkeypatch.setenv("QACTUAR_ADMIN_TOKEN", TOKEN)
    config = load_config(str(path))
    assert config.ADMIN_TOKEN == TOKEN
    with serve_admin(FakeBackend(config)) as srv, client(srv.url) as c:
        assert c.post("/config/save").status_code == 200
    assert_no_token(path.read_text())
    return config


def test_save_never_writes_a_secret_the_file_did_not_hold(
        tmp_path: Any, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf.json"
    config = _saved_with_the_environments_token(path, {"MAX_PROCESSES": 9}, monkeypatch)
    assert every_setting(load_config(str(path))) == every_setting(config)


def test_save_keeps_the_files_own_token_over_the_environments(
        tmp_path: Any, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf.json"
    _saved_with_the_environments_token(
        path, {"ADMIN_TOKEN": "the-files-own-token-0123456789", "MAX_PROCESSES": 9}, monkeypatch)
    assert json.loads(path.read_text()) == {
        "ADMIN_TOKEN": "the-files-own-token-0123456789", "MAX_PROCESSES": 9}


def test_save_without_a_file_is_409() -> None:
    with serve_admin(FakeBackend()) as srv, client(srv.url) as c:
        answer = c.post("/config/save")
        assert answer.status_code == 409
        assert "came from no file" in answer.json()["error"]
