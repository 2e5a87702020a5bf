"""A real nginx (Debian's package) in front of qactuar, in every model, from deploy/'s templates.

Each test starts its own nginx with the template filled in for a temporary
directory and free loopback ports (``daemon off``, stopped by PID), and
qactuar behind it over TCP or a Unix socket. The test client connects from
127.0.0.2 so that its address differs from nginx's own (127.0.0.1).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from frontproxy import CLIENT_ADDRESS, client, connect_from_client_address, fill, start
from support import RawClient, Spawned, free_port, model_args, stop_process
from websockets.sync.client import connect as ws_connect

MODELS = ["fork", "async", "prefork"]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
UPLOAD = 20 * 1024 * 1024

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK),
    reason="nginx is not installed (scripts/install-test-tools installs it as root)",
)


@pytest.fixture
def workdir() -> Iterator[str]:
    """A short temporary directory (a Unix socket path has at most 107 bytes)."""
    path = tempfile.mkdtemp(prefix="qt-nginx-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def nginx(workdir: str) -> Iterator[Callable[..., int]]:
    """``nginx(template, **values)`` starts nginx from deploy/<template>; returns its port."""
    started = []

    def run(template: str, **values: Any) -> int:
        port = free_port()
        temp = os.path.join(workdir, "nginx-temp")
        os.makedirs(temp, exist_ok=True)
        settings = {
            "USER": pwd.getpwuid(os.getuid()).pw_name,  # workers reach the test's files
            "WORKERS": 1,
            "PID_FILE": os.path.join(workdir, "nginx.pid"),
            "ERROR_LOG": os.path.join(workdir, "nginx-error.log"),
            "ACCESS_LOG": os.path.join(workdir, "nginx-access.log"),
            "TEMP_DIR": temp,
            "LISTEN_TCP": f"127.0.0.1:{port}",
            "STREAM_MODULE": STREAM_MODULE,
            **values,
        }
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write(fill(template, settings))
        started.append(start(
            [NGINX, "-p", workdir, "-c", conf, "-e", settings["ERROR_LOG"], "-g", "daemon off;"],
            port, os.path.join(workdir, "nginx-output.log"),
        ))
        return port

    yield run
    for proc in started:
        stop_process(proc)


def backend(spawn_qactuar: Callable[..., Spawned], model: str, transport: str, workdir: str,
            *args: str) -> tuple[Spawned, dict[str, Any]]:
    """qactuar serving proxied:app; the nginx.conf values that point at it."""
    if transport == "tcp":
        srv = spawn_qactuar(*model_args(model), *args, "proxied:app")
        return srv, {"QACTUAR_TCP": f"127.0.0.1:{srv.port}",
                     "QACTUAR_UDS": os.path.join(workdir, "none.sock")}
    path = os.path.join(workdir, "qactuar.sock")
    srv = spawn_qactuar(*model_args(model), "--uds", path, *args, "proxied:app", listen="own")
    return srv, {"QACTUAR_TCP": f"127.0.0.1:{free_port()}", "QACTUAR_UDS": path}


def start_http_front(nginx: Callable[..., int], transport: str, values: dict[str, Any]) -> int:
    """nginx.conf started; the port of its server block for ``transport``."""
    unix_port = free_port()
    tcp_port = nginx("nginx.conf", FORWARDED_PROTO="https", LISTEN_UNIX=f"127.0.0.1:{unix_port}",
                     **values)
    return tcp_port if transport == "tcp" else unix_port


def direct_whoami(port: int, source: str) -> dict[str, Any]:
    """A request straight to qactuar from ``source``, forging every proxy header."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as sock:
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n"
                     b"X-Forwarded-Proto: https\r\nForwarded: for=6.6.6.7;proto=https\r\n\r\n")
        return json.loads(RawClient.over(sock).response().body)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_trusted_nginx(spawn_qactuar, nginx, workdir, model, transport):
    trust = ("--forwarded-allow-ips", "unix") if transport == "unix" else ()
    srv, values = backend(spawn_qactuar, model, transport, workdir, *trust)
    port = start_http_front(nginx, transport, values)
    front = f"http://127.0.0.1:{port}"
    seen = {"client": [CLIENT_ADDRESS, 0], "server": ["127.0.0.1", port], "scheme": "https"}
    with client() as http:
        # the client's own X-Forwarded-For is kept, but nginx appended its address
        for _ in range(3):  # over nginx's kept-alive upstream connection too
            response = http.get(f"{front}/whoami", headers={"X-Forwarded-For": "6.6.6.6"})
            assert response.status_code == 200 and response.json() == seen
        data = os.urandom(UPLOAD)
        response = http.post(f"{front}/upload", content=data)
        assert response.json() == {"sha256": hashlib.sha256(data).hexdigest(), "size": UPLOAD}
        arrivals = []
        with http.stream("GET", f"{front}/stream?gap=1") as response:
            for chunk in response.iter_text():
                arrivals.append((time.monotonic(), chunk))
        assert "".join(chunk for _, chunk in arrivals) == "first\nlast\n"
        assert arrivals[0][1].startswith("first") and arrivals[-1][0] - arrivals[0][0] > 0.5
    with ws_connect(f"ws://127.0.0.1:{port}/ws", sock=connect_from_client_address(port),
                    open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10)) == {**seen, "scheme": "wss"}
        ws.send("through nginx")
        assert ws.recv(timeout=10) == "through nginx"
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=10) == b"\x00" * 100_000
    if transport == "tcp":
        # straight to qactuar from an address that is no trusted proxy: not believed
        got = direct_whoami(srv.port, CLIENT_ADDRESS)
        assert got["client"][0] == CLIENT_ADDRESS and got["client"][1] > 0
        assert got["scheme"] == "http" and got["server"] == ["127.0.0.1", srv.port]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_untrusted_nginx(spawn_qactuar, nginx, workdir, model, transport):
    # FORWARDED_ALLOW_IPS names some other address (TCP) or leaves out "unix"
    trust = ("--forwarded-allow-ips", "192.0.2.1") if transport == "tcp" else ()
    srv, values = backend(spawn_qactuar, model, transport, workdir, *trust)
    port = start_http_front(nginx, transport, values)
    with client() as http:
        got = http.get(f"http://127.0.0.1:{port}/whoami").json()
    assert got["scheme"] == "http"
    if transport == "tcp":
        assert got["client"][0] == "127.0.0.1" and got["client"][1] > 0  # nginx's own
        assert got["server"] == ["127.0.0.1", srv.port]
        got = direct_whoami(srv.port, "127.0.0.1")
        assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http"
    else:
        assert got["client"] is None and got["server"] is None


@pytest.mark.skipif(not os.path.exists(STREAM_MODULE), reason="no libnginx-mod-stream")
@pytest.mark.parametrize("model", MODELS)
def test_proxy_protocol_through_nginx_stream(spawn_qactuar, nginx, workdir, model):
    srv, values = backend(spawn_qactuar, model, "tcp", workdir, "--proxy-protocol")
    port = nginx("nginx-proxy-protocol.conf", **values)
    for _ in range(2):
        with connect_from_client_address(port) as sock:
            sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
            got = json.loads(RawClient.over(sock).response().body)
            assert got == {"client": list(sock.getsockname()), "server": ["127.0.0.1", port],
                           "scheme": "http"}
    with ws_connect(f"ws://127.0.0.1:{port}/ws", sock=connect_from_client_address(port),
                    open_timeout=10) as ws:
        got = json.loads(ws.recv(timeout=10))
        assert got["client"][0] == CLIENT_ADDRESS and got["scheme"] == "ws"
    # without nginx, no PROXY header: closed unanswered
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n")
        assert RawClient.over(sock).closed_by_server(10)
