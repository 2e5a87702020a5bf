"""Debian's HAProxy in front of two qactuar hosts with PROXY protocol v2, from deploy/haproxy.cfg.

The two hosts run different models (fork and prefork) as two hosts of a
deployment might; HAProxy spreads connections over both and health-checks
them on HEALTH_PATH with a v2 LOCAL header, as the file says.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket

import pytest
from frontproxy import CLIENT_ADDRESS, connect_from_client_address, fill, start
from support import RawClient, free_port, model_args, read_until_closed, stop_process, wait_until
from websockets.sync.client import connect as ws_connect

QACTUAR_ARGS = ("--proxy-protocol", "--health-path", "/healthz")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(
    not os.access(HAPROXY, os.X_OK),
    reason="haproxy is not installed (scripts/install-test-tools installs it as root)",
)


def test_two_hosts_behind_haproxy(spawn_qactuar, tmp_path):
    hosts = [spawn_qactuar(*model_args(model), "proxied:app") for model in ("fork", "prefork")]
    port = free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(fill("haproxy.cfg", {
        "LISTEN_TCP": f"127.0.0.1:{port}",
        "QACTUAR_TCP": f"127.0.0.1:{hosts[0].port}",
        "QACTUAR_TCP_2": f"127.0.0.1:{hosts[1].port}",
        "STATS_SOCKET": str(tmp_path / "haproxy.sock"),
    }))
    proc = start([HAPROXY, "-f", str(conf), "-db"], port, str(tmp_path / "haproxy.log"))
    try:
        for _ in range(4):  # round robin: two connections to each host
            with connect_from_client_address(port) as sock:
                sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
                got = json.loads(RawClient.over(sock).response().body)
                assert got == {"client": list(sock.getsockname()),
                               "server": ["127.0.0.1", port], "scheme": "http"}
        with ws_connect(f"ws://127.0.0.1:{port}/ws", sock=connect_from_client_address(port),
                        open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["client"][0] == CLIENT_ADDRESS
            ws.send("through haproxy")
            assert ws.recv(timeout=10) == "through haproxy"
        # every host served the client
        for host in hosts:
            host.wait_for_log(f"ACCESS {CLIENT_ADDRESS}:")
        # and HAProxy's HTTP checks, each behind a v2 LOCAL header, pass on
        # both (L7OK: a 2xx answer) ...
        wait_until(lambda: check_status(tmp_path / "haproxy.sock") == {
            "web1": "L7OK", "web2": "L7OK"}, what="both health checks L7OK", interval=0.2)
        # ... answered by the server itself on HEALTH_PATH, not by the app
        # (which answers any path, and would write an access line)
        assert not any("/healthz" in host.output() for host in hosts)
    finally:
        stop_process(proc)


def check_status(stats_socket: os.PathLike[str]) -> dict[str, str]:
    """Each backend server's last health check result, from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(os.fspath(stats_socket))
        sock.sendall(b"show stat\n")
        data = read_until_closed(sock)
    rows = csv.DictReader(data.decode().lstrip("# ").splitlines())
    return {row["svname"]: row["check_status"] for row in rows
            if row["pxname"] == "qactuar" and row["svname"].startswith("web")}
