"""The server answers real clients at all: the base every other test stands on."""

from __future__ import annotations

import signal

import httpx
from apps import basic  # type: ignore[import-not-found]


def test_hello_over_a_real_socket(serve):
    with serve(basic.hello) as srv:
        response = httpx.get(srv.url + "/")
        assert response.status_code == 200
        assert response.text == "Hello, world!"
        assert response.headers["server"] == "qactuar"
        assert response.headers["content-length"] == "13"


def test_cli_process_serves_and_stops_on_sigterm(spawn_qactuar):
    proc = spawn_qactuar("basic:hello")
    assert httpx.get(proc.url + "/").text == "Hello, world!"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
