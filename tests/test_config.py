"""Config (issue 3, item 6): precedence, checks with one-line errors, the seed's alias."""

from __future__ import annotations

import json

import httpx
import pytest
from support import run_qactuar

from qactuar import Config, ConfigError
from qactuar.config import load_config

#: test_cli.py and test_conventions.py import these from here: legacy, remove when they
#: migrate to support


def write_json(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("QACTUAR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- precedence ------------------------------------------------------------------


def test_defaults_without_a_file(clean_env):
    config = load_config()
    assert config.PORT == 8000
    assert config.HOST == "localhost"
    assert config.MODEL == "fork"  # the seed's model, as DESIGN.md says


def test_file_in_cwd_overrides_defaults(clean_env):
    write_json(clean_env / "qactuar_config.json", {"PORT": 9001, "ROOT_PATH": "/cwd"})
    config = load_config()
    assert (config.PORT, config.ROOT_PATH, config.HOST) == (9001, "/cwd", "localhost")


def test_env_file_wins_over_cwd_file(clean_env, monkeypatch):
    write_json(clean_env / "qactuar_config.json", {"PORT": 9001})
    other = write_json(clean_env / "other.json", {"PORT": 9002})
    monkeypatch.setenv("QACTUAR_CONFIG", other)
    assert load_config().PORT == 9002


def test_overrides_win_over_the_file(clean_env):
    write_json(clean_env / "qactuar_config.json", {"PORT": 9001, "HOST": "0.0.0.0"})
    config = load_config(None, {"PORT": 9003, "HOST": None})
    assert config.PORT == 9003
    assert config.HOST == "0.0.0.0"  # None means "not given"


def test_precedence_in_a_running_process(spawn_qactuar, tmp_path):
    # the file's ROOT_PATH beats the default; the CLI's --port (0) beats the file's PORT
    conf = write_json(tmp_path / "c.json", {"ROOT_PATH": "/from-file", "PORT": 1,
                                            "KEEP_ALIVE_TIMEOUT": 1})
    proc = spawn_qactuar("basic:echo", env={"QACTUAR_CONFIG": conf}, listen="own")
    report = httpx.get(proc.url + "/x", timeout=5).json()
    assert report["root_path"] == "/from-file"
    assert report["path"] == "/from-file/x"


def test_cli_flag_beats_the_file_in_a_running_process(spawn_qactuar, tmp_path):
    conf = write_json(tmp_path / "c.json", {"ROOT_PATH": "/from-file"})
    proc = spawn_qactuar("basic:echo", "--root-path", "/from-cli",
                         env={"QACTUAR_CONFIG": conf})
    assert httpx.get(proc.url + "/x", timeout=5).json()["root_path"] == "/from-cli"


# -- refused values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("NO_SUCH_KEY", 1, "unknown"),
        ("PORT", "8000", "integer"),
        ("GATHER_PROC_STATS", "yes", "true or false"),
        ("PORT", 70000, "65535"),
        ("LOOP", "x", "uvloop"),
        ("MODEL", "x", "async"),
        ("LIFESPAN", "sometimes", "auto"),
        ("GRACEFUL_TIMEOUT", -1, "at least"),
        ("APPS", {"api": "basic:hello"}, "'/'"),
        ("LOGS", [], "object"),
        ("LOGS", {"handlers": {}}, "version"),
        ("GRACEFUL_TIMEOUT", float("nan"), "finite"),
        ("KEEP_ALIVE_TIMEOUT", float("inf"), "finite"),
        ("ROOT_PATH", "api", "'/'"),
        ("APPS", {"/api": "basic:hello", "/api/": "basic:echo"}, "the same route"),
        ("ASYNCRONOUS_MODEL", 7, "1 (fork), 2 (async), 3 (prefork)"),
        ("ASYNCRONOUS_MODEL", "threads", "async"),
    ],
)
def test_bad_file_value_stops_start_up_with_one_line(tmp_path, key, value, words):
    conf = write_json(tmp_path / "bad.json", {key: value})
    result = run_qactuar("basic:hello", env={"QACTUAR_CONFIG": conf})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert key in line
    assert repr(value) in line or json.dumps(value) in line
    assert conf in line
    assert words in line


def test_logs_that_logging_refuses_is_one_line(tmp_path):
    logs = {"version": 1, "handlers": {"out": {"class": "no_such_pkg.Handler"}}}
    conf = write_json(tmp_path / "logs.json", {"LOGS": logs})
    result = run_qactuar("basic:hello", env={"QACTUAR_CONFIG": conf})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "LOGS" in lines[0] and conf in lines[0] and "no_such_pkg" in lines[0]


@pytest.mark.parametrize("key, value, words", [
    ("SSL_CERT_PATH", "/no/such/cert.pem", "No such file"),
    ("SSL_KEY_PATH", "/no/such/key.pem", "SSL_CERT_PATH"),
])
def test_tls_files_are_checked_at_start_up(tmp_path, key, value, words):
    conf = write_json(tmp_path / "tls.json", {key: value, "MODEL": "async"})
    result = run_qactuar("basic:hello", "--port", "0", env={"QACTUAR_CONFIG": conf})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert key in lines[0] and value in lines[0] and conf in lines[0] and words in lines[0]


def test_config_file_that_is_not_utf8(tmp_path):
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"ROOT_PATH": "/caf\xe9"}')
    result = run_qactuar("basic:hello", env={"QACTUAR_CONFIG": str(bad)})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert str(bad) in lines[0] and "UTF-8" in lines[0]


@pytest.mark.parametrize("args, words", [
    (("--loop", "x"), "--loop"),
    (("--port", "eighty"), "--port"),
    (("--lifespan", "sometimes"), "sometimes"),
    (("--no-such-flag",), "--no-such-flag"),
])
def test_bad_cli_flag_is_one_line(args, words):
    result = run_qactuar("basic:hello", *args)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert words in lines[0] and "command line" in lines[0]


def test_bad_cli_value_names_the_command_line():
    result = run_qactuar("basic:hello", "--port", "70000")
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "PORT" in lines[0] and "70000" in lines[0] and "command line" in lines[0]


def test_invalid_json_names_the_file_and_line(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "PORT": 8000,\n  "HOST": "x",,\n}\n')
    result = run_qactuar("basic:hello", env={"QACTUAR_CONFIG": str(bad)})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert str(bad) in lines[0]
    assert "line 3" in lines[0]


def test_missing_config_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.json")
    result = run_qactuar("basic:hello", env={"QACTUAR_CONFIG": missing})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert missing in lines[0]


def test_missing_file_named_by_the_config_flag(tmp_path):
    missing = str(tmp_path / "nope.json")
    result = run_qactuar("basic:hello", "--config", missing)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "--config" in lines[0] and missing in lines[0] and "command line" in lines[0]


def test_cwd_file_that_is_not_an_object(tmp_path):
    (tmp_path / "qactuar_config.json").write_text("[1, 2]")
    result = run_qactuar("basic:hello", cwd=str(tmp_path))
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "qactuar_config.json" in lines[0] and "current directory" in lines[0]
    assert "JSON object" in lines[0]


def test_cwd_file_is_read_by_the_cli(tmp_path):
    write_json(tmp_path / "qactuar_config.json", {"PORT": "eighty"})
    result = run_qactuar("basic:hello", cwd=str(tmp_path))
    assert result.returncode == 2
    assert "qactuar_config.json" in result.stderr
    assert "'eighty'" in result.stderr


def test_error_in_load_config_names_key_value_and_source(clean_env):
    conf = write_json(clean_env / "c.json", {"MAX_BODY_BYTES": -5})
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    assert info.value.key == "MAX_BODY_BYTES"
    assert info.value.value == -5
    assert info.value.source.endswith("c.json")


# -- the seed's names ------------------------------------------------------------


def test_asyncronous_model_alias(clean_env):
    write_json(clean_env / "qactuar_config.json", {"ASYNCRONOUS_MODEL": 2})
    assert load_config().MODEL == "async"


def test_seed_keys_are_accepted(clean_env):
    seed = {"HOST": "127.0.0.1", "PORT": 8001, "ADMIN_HOST": "localhost", "ADMIN_PORT": 1986,
            "CHECK_PROCESS_INTERVAL": 1, "SELECT_SLEEP_TIME": 0.025, "RECV_TIMEOUT": 0.001,
            "RECV_BYTES": 65536, "MAX_PROCESSES": 500, "GATHER_PROC_STATS": False,
            "REQUEST_TIMEOUT": 5, "APPS": {"/": "basic:hello"},
            "SSL_CERT_PATH": "", "SSL_KEY_PATH": ""}
    write_json(clean_env / "qactuar_config.json", seed)
    config = load_config()
    for key, value in seed.items():
        assert getattr(config, key) == value


def test_config_dataclass_checks_its_arguments():
    with pytest.raises(ConfigError) as info:
        Config(HOST=1)  # type: ignore[arg-type]
    assert "HOST" in str(info.value)
    with pytest.raises(ConfigError):
        Config(PORT=-1)
    assert Config(HOST="0.0.0.0", PORT=0).HOST == "0.0.0.0"


def test_config_defaults_are_not_shared():
    first, second = Config(), Config()
    first.APPS["/x"] = "basic:hello"
    first.LOGS["version"] = 2
    assert second.APPS == {}
    assert second.LOGS["version"] == 1


# -- the environment: QACTUAR_<KEY> between the file and the command line ---------


def test_environment_sits_between_file_and_overrides(clean_env, monkeypatch):
    write_json(clean_env / "qactuar_config.json", {"PORT": 9001, "ROOT_PATH": "/file"})
    monkeypatch.setenv("QACTUAR_PORT", "9002")
    monkeypatch.setenv("QACTUAR_ACCESS_LOG", "off")
    monkeypatch.setenv("QACTUAR_GRACEFUL_TIMEOUT", "2.5")
    monkeypatch.setenv("QACTUAR_APPS", '{"/x": "m:a"}')
    config = load_config()
    assert (config.PORT, config.ROOT_PATH, config.ACCESS_LOG) == (9002, "/file", False)
    assert config.GRACEFUL_TIMEOUT == 2.5 and config.APPS == {"/x": "m:a"}
    assert config.source_of("PORT") == "environment QACTUAR_PORT"
    assert load_config(None, {"PORT": 9003}).PORT == 9003


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("QACTUAR_PORT", "eighty", "config PORT='eighty' (from environment QACTUAR_PORT): "
                                   "expected an integer"),
        ("QACTUAR_PORT", "70000", "must be a port number"),
        ("QACTUAR_ACCESS_LOG", "maybe", "expected true or false"),
        ("QACTUAR_APPS", "{nope", "invalid JSON"),
        ("QACTUAR_PROT", "80", "config PROT='80' (from environment QACTUAR_PROT): unknown setting"),
    ],
)
def test_bad_environment_values_name_the_variable(clean_env, monkeypatch, name, text, words):
    monkeypatch.setenv(name, text)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert words in str(info.value)


def test_environment_reaches_the_command(tmp_path):
    result = run_qactuar("basic:app", env={"QACTUAR_MODEL": "nonsense"}, cwd=str(tmp_path))
    assert result.returncode == 2
    assert "MODEL='nonsense' (from environment QACTUAR_MODEL)" in result.stderr
