"""Logging (issue 3, item 9): access lines, LOGS, --no-access-log, --log-level."""

from __future__ import annotations

import json
import re
import signal
import socket

import httpx
import pytest
from support import read_until_closed, wait_until

ACCESS = re.compile(
    r'ACCESS 127\.0\.0\.1:(\d+) - "(\S+) (\S+) HTTP/(1\.[01])" (\d{3}) (\d+) ([\d.]+)ms$',
    re.M,
)


@pytest.mark.parametrize("model", ["async", "fork"])
def test_one_access_line_per_request(spawn_qactuar, model):
    proc = spawn_qactuar("--model", model, "basic:slow")
    with httpx.Client(base_url=proc.url, timeout=5) as client:
        for path in ("/a?seconds=0", "/b/c?seconds=0.3", "/d?seconds=0"):
            client.get(path)
        port = client.get("/e?seconds=0").extensions["network_stream"].get_extra_info(
            "client_addr")[1]
    output = proc.wait_for_log("ACCESS 127.0.0.1:", 10, count=4)
    lines = ACCESS.findall(output)
    assert [(m, p) for _, m, p, *_ in lines] == [
        ("GET", "/a?seconds=0"), ("GET", "/b/c?seconds=0.3"), ("GET", "/d?seconds=0"),
        ("GET", "/e?seconds=0")]
    for client_port, _, _, version, status, size, _ in lines:
        assert int(client_port) == port  # one keep-alive connection
        assert (version, status, size) == ("1.1", "200", "4")  # b"done"
    durations = [float(d) for *_, d in lines]
    assert 290 <= durations[1] < 3000  # the request slept 0.3 s
    assert durations[0] < durations[1]


def test_access_line_for_errors_and_http10(spawn_qactuar, tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"APPS": {"/hello": "basic:hello", "/boom": "core:raises"}}))
    proc = spawn_qactuar(env={"QACTUAR_CONFIG": str(conf)})
    httpx.get(proc.url + "/nowhere", timeout=5)
    httpx.get(proc.url + "/boom", timeout=5)
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
    output = proc.wait_for_log("ACCESS 127.0.0.1:", 10, count=3)
    lines = [(m, p, v, s, n) for _, m, p, v, s, n, _ in ACCESS.findall(output)]
    assert ("GET", "/nowhere", "1.1", "404", "10") in lines
    assert ("GET", "/hello", "1.0", "200", "13") in lines
    assert any(p == "/boom" and s == "500" for _, p, _, s, _ in lines)
    # the exception went to qt_exception with its traceback
    assert "Traceback" in output
    assert "KeyError: 'missing-thing'" in output


def test_logs_replaces_the_whole_dictionary(spawn_qactuar, tmp_path):
    access_file = tmp_path / "access.log"
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"bare": {"format": "custom-access {message}", "style": "{"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(access_file),
                              "formatter": "bare", "level": "INFO"}},
        "loggers": {"qt_access": {"handlers": ["file"], "level": "INFO",
                                  "propagate": False}},
    }
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"LOGS": logs}))
    proc = spawn_qactuar("basic:hello", env={"QACTUAR_CONFIG": str(conf)})
    assert httpx.get(proc.url + "/via-file", timeout=5).status_code == 200
    wait_until(lambda: "via-file" in access_file.read_text(), 10,
               what="the access line in LOGS' file")
    text = access_file.read_text()
    assert re.search(r'^custom-access 127\.0\.0\.1:\d+ - "GET /via-file HTTP/1\.1" 200 13 ',
                     text, re.M), text
    output = proc.output()
    assert "ACCESS" not in output
    assert "Listening on" not in output  # qt_server lost the default console handler


def test_logs_with_only_a_root_handler_gets_qactuars_lines(spawn_qactuar, tmp_path):
    # dictConfig disables loggers that exist and are not named, unless told not to;
    # qactuar's own loggers exist before LOGS is applied and must not be lost that way
    log_file = tmp_path / "all.log"
    logs = {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file)}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"LOGS": logs}))
    proc = spawn_qactuar("basic:hello", env={"QACTUAR_CONFIG": str(conf)})
    assert httpx.get(proc.url + "/via-root", timeout=5).status_code == 200
    wait_until(lambda: "via-root" in log_file.read_text(), 10,
               what="the access line in the root handler's file")
    text = log_file.read_text()
    assert "Listening on" in text
    assert '"GET /via-root HTTP/1.1" 200 13' in text


@pytest.mark.parametrize("model", ["async", "fork"])
def test_no_access_log(spawn_qactuar, model):
    proc = spawn_qactuar("basic:hello", "--no-access-log", "--model", model)
    assert httpx.get(proc.url + "/quiet", timeout=5).status_code == 200
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0  # all it would have logged is in the output now
    output = proc.output()
    assert "Listening on" in output
    assert "/quiet" not in output


def test_log_level_warning_silences_info(spawn_qactuar, tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"APPS": {"/hello": "basic:hello", "/boom": "core:raises"}}))
    proc = spawn_qactuar("--log-level", "warning", env={"QACTUAR_CONFIG": str(conf)})
    assert httpx.get(proc.url + "/hello", timeout=5).status_code == 200
    assert httpx.get(proc.url + "/boom", timeout=5).status_code == 500
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0  # all it would have logged is in the output now
    output = proc.output()
    assert "Listening on" not in output
    assert "INFO" not in output
    assert "ACCESS" not in output
    assert "KeyError: 'missing-thing'" in output  # errors still reach qt_exception
