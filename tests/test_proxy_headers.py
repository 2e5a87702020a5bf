"""Proxy headers end to end in the server core: real sockets, raw requests, the app's scope.

The process models share the core; tests/test_nginx.py runs all three behind a real nginx.
"""

from __future__ import annotations

import json
import socket

import pytest
from apps.proxied import app as APP  # type: ignore[import-not-found]
from proxyraw import V1
from support import RawClient, read_until_closed, run_qactuar
from wsraw import TEXT, RawWebSocket

from qactuar.config import Config, ConfigError, load_config


def whoami(port: int, *headers: str, family: int = socket.AF_INET) -> dict:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.create_connection((host, port), timeout=5) as sock:
        lines = "".join(f"{h}\r\n" for h in headers)
        sock.sendall(f"GET /whoami HTTP/1.1\r\nHost: test\r\n{lines}\r\n".encode("latin-1"))
        response = RawClient.over(sock).response()
    assert response.status == 200, response.body
    return json.loads(response.body)


def test_trusted_peer_sets_client_scheme_and_server(serve):
    with serve(APP) as srv:
        got = whoami(srv.port, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https",
                     "X-Forwarded-Host: example.com")
        assert got == {"client": ["203.0.113.7", 0], "server": ["example.com", 443],
                       "scheme": "https"}
        got = whoami(srv.port, 'Forwarded: for="[2001:db8::7]:4711";proto=https')
        assert got["client"] == ["2001:db8::7", 4711] and got["scheme"] == "https"
        plain = whoami(srv.port)
        assert plain["client"][0] == "127.0.0.1" and plain["scheme"] == "http"
        assert plain["server"] == ["127.0.0.1", srv.port]


def test_forged_headers_from_an_untrusted_peer_are_not_believed(serve):
    with serve(APP, FORWARDED_ALLOW_IPS=["192.0.2.1"]) as srv:
        got = whoami(srv.port, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https",
                     "Forwarded: for=198.51.100.1;proto=https", "X-Forwarded-Host: evil")
        assert got["client"][0] == "127.0.0.1" and got["client"][1] > 0
        assert got["scheme"] == "http" and got["server"] == ["127.0.0.1", srv.port]


def test_proxy_headers_off(serve):
    with serve(APP, PROXY_HEADERS=False) as srv:
        got = whoami(srv.port, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
        assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http"


@pytest.mark.parametrize("header", [
    "X-Forwarded-For: not-an-address", "X-Forwarded-For: 1.2.3.4:99999",
    "X-Forwarded-For: ,,,", "X-Forwarded-Proto: javascript", "Forwarded: for=\"[::1",
    "Forwarded: for=1.2.3.4;for=5.6.7.8", "X-Forwarded-Host: a b", "X-Forwarded-Port: 1e9",
    "X-Forwarded-For: \xff\xfe", "Forwarded: ;;,,;",
])
def test_malformed_values_are_ignored(serve, header):
    with serve(APP) as srv:
        got = whoami(srv.port, header)
        assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http"
        assert got["server"] == ["127.0.0.1", srv.port]


def test_ipv6_peer_trusted_by_default(serve):
    with serve(APP, HOST="::1") as srv:
        got = whoami(srv.port, "X-Forwarded-For: 203.0.113.9", family=socket.AF_INET6)
        assert got["client"] == ["203.0.113.9", 0]


def test_websocket_scope_gets_wss_and_the_client(serve):
    with serve(APP) as srv:
        ws = RawWebSocket.open(srv.port, "/ws", extra=[("X-Forwarded-For", "203.0.113.7"),
                                                      ("X-Forwarded-Proto", "https")])
        with ws.sock:
            frame = ws.read_frame()
        assert frame.opcode == TEXT
        got = json.loads(frame.payload)
        assert got["client"] == ["203.0.113.7", 0] and got["scheme"] == "wss"


def _unix_whoami(path: str, *headers: str) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        lines = "".join(f"{h}\r\n" for h in headers)
        sock.sendall(f"GET /whoami HTTP/1.1\r\nHost: test\r\n{lines}\r\n".encode())
        response = RawClient.over(sock).response()
    return json.loads(response.body)


@pytest.mark.parametrize(("allow", "believed"), [(["127.0.0.1", "::1"], False),
                                                 (["unix"], True), (["*"], True)])
def test_unix_socket_peers_trusted_only_with_unix(serve, tmp_path, allow, believed):
    path = str(tmp_path / "qactuar.sock")
    with serve(APP, UDS=path, FORWARDED_ALLOW_IPS=allow):
        got = _unix_whoami(path, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
    if believed:
        assert got["client"] == ["203.0.113.7", 0] and got["scheme"] == "https"
    else:
        assert got["client"] is None and got["scheme"] == "http"


def test_keep_alive_requests_are_judged_each_on_its_own(serve):
    with serve(APP) as srv, srv.connect() as sock:
        conn = RawClient.over(sock)
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
        assert json.loads(conn.response().body)["client"] == ["203.0.113.7", 0]
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert json.loads(read_until_closed(sock).partition(b"\r\n\r\n")[2])["client"][0] == (
            "127.0.0.1")


# configuration -------------------------------------------------------------------


def test_defaults():
    config = Config()
    assert config.PROXY_HEADERS is True and config.PROXY_PROTOCOL is False
    assert config.FORWARDED_ALLOW_IPS == ["127.0.0.1", "::1"]


def test_plain_forwarded_allow_ips_variable_below_the_qactuar_one(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QACTUAR_CONFIG", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, unix")
    config = load_config()
    assert config.FORWARDED_ALLOW_IPS == ["10.0.0.0/8", "unix"]
    assert config.source_of("FORWARDED_ALLOW_IPS") == "environment FORWARDED_ALLOW_IPS"
    monkeypatch.setenv("QACTUAR_FORWARDED_ALLOW_IPS", '["*"]')
    assert load_config().FORWARDED_ALLOW_IPS == ["*"]
    assert load_config(overrides={"FORWARDED_ALLOW_IPS": ["192.0.2.1"]}).FORWARDED_ALLOW_IPS == [
        "192.0.2.1"]


def test_bad_entry_is_refused_naming_key_value_and_source(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1,localhost")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.key == "FORWARDED_ALLOW_IPS" and "'localhost'" in str(info.value)
    assert "environment FORWARDED_ALLOW_IPS" in str(info.value)


def test_cli_refuses_a_bad_network_in_one_line(monkeypatch):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    proc = run_qactuar("--forwarded-allow-ips", "10.0.0.0/99", "proxied:app")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "FORWARDED_ALLOW_IPS" in lines[0] and "10.0.0.0/99" in lines[0]


def test_proxy_protocol_with_qactuars_own_tls_starts(spawn_qactuar, tmp_path):
    """Once refused at start-up; the PROXY header is now read before the handshake."""
    from tlscerts import Certs

    certs = Certs(tmp_path)
    srv = spawn_qactuar("--model", "async", "--proxy-protocol",
                        "--ssl-cert-path", certs.server_pem, "proxied:app")
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    raw.sendall(V1)
    with certs.context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["client"] == ["198.51.100.4", 51000]


@pytest.mark.parametrize(("allow", "served"), [(["unix"], True), (["127.0.0.1"], False)])
def test_proxy_protocol_on_a_unix_socket(serve, tmp_path, allow, served):
    path = str(tmp_path / "qactuar.sock")
    with serve(APP, UDS=path, PROXY_PROTOCOL=True, FORWARDED_ALLOW_IPS=allow), \
            socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        try:
            sock.sendall(V1 + b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        except BrokenPipeError:
            # closed before the request was all written: a refusal (a timeout
            # is not caught, and a served request would have been read)
            assert not served
        answer = read_until_closed(sock)
    if served:
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
            "client": ["198.51.100.4", 51000], "server": ["192.0.2.1", 443], "scheme": "http"}
    else:
        assert answer == b""
