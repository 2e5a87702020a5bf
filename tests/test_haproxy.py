"""Debian's HAProxy in front of two qactuar hosts with PROXY protocol v2, from deploy/haproxy.cfg.

The two hosts run different models (fork and prefork) as two hosts of a
deployment might; HAProxy spreads connections over both and health-checks
them with a v2 LOCAL header.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from conftest import free_port, stop_process
from frontproxy import CLIENT_ADDRESS, connect_from_client_address, fill, start
from rawhttp import RawConnection
from websockets.sync.client import connect as ws_connect

QACTUAR_ARGS = ("--workers", "1", "--proxy-protocol")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(
    not os.access(HAPROXY, os.X_OK),
    reason="haproxy is not installed (scripts/install-test-tools installs it as root)",
)


def test_two_hosts_behind_haproxy(spawn_qactuar, tmp_path):
    hosts = [spawn_qactuar("--model", model, "proxied:app") for model in ("fork", "prefork")]
    port = free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(fill("haproxy.cfg", {
        "LISTEN_TCP": f"127.0.0.1:{port}",
        "QACTUAR_TCP": f"127.0.0.1:{hosts[0].port}",
        "QACTUAR_TCP_2": f"127.0.0.1:{hosts[1].port}",
    }))
    proc = start([HAPROXY, "-f", str(conf), "-db"], port, str(tmp_path / "haproxy.log"))
    try:
        for _ in range(4):  # round robin: two connections to each host
            with connect_from_client_address(port) as sock:
                sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
                got = json.loads(RawConnection(sock).read_response().body)
                assert got == {"client": list(sock.getsockname()),
                               "server": ["127.0.0.1", port], "scheme": "http"}
        with ws_connect(f"ws://127.0.0.1:{port}/ws", sock=connect_from_client_address(port),
                        open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["client"][0] == CLIENT_ADDRESS
            ws.send("through haproxy")
            assert ws.recv(timeout=10) == "through haproxy"
        # every host served the client, and answered HAProxy's health checks,
        # whose LOCAL header leaves the socket's own address (127.0.0.1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            logs = [host.output() for host in hosts]
            if all(f"ACCESS {CLIENT_ADDRESS}:" in log and "ACCESS 127.0.0.1:" in log
                   for log in logs):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"not every host saw the client and a health check: {logs}")
    finally:
        stop_process(proc)
