"""TLS in every process model (certificates made with ``trustme`` at test time).

HTTPS with the ASGI TLS extension, keep-alive, ``wss://``, client
certificates, plain-HTTP and silent clients on the TLS port, large bodies,
prefork's SIGHUP re-reading the certificate, and settings that do not load.
The fork model's relay has its own file, ``test_tls_fork.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from typing import Any

import httpx
import pytest
from support import RawClient, read_until_closed, run_qactuar, wait_until
from tlscerts import MODELS, Certs, client, pem, serve, subject, tls_socket
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("model", MODELS)
def test_https_with_the_tls_extension_in_the_scope(spawn_qactuar, certs, model):
    server = serve(spawn_qactuar, certs, model)
    with client(certs, server) as http:
        report = http.get("/scope").json()
    assert report["scheme"] == "https"
    tls = report["tls"]
    assert tls["server_cert"] == pem(certs.server.cert_chain_pems[0])
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    if model == "fork":
        assert report["pid"] != server.proc.pid


@pytest.mark.parametrize("model", MODELS)
def test_tls_1_2_client_and_keep_alive(spawn_qactuar, certs, model):
    server = serve(spawn_qactuar, certs, model)
    context = certs.context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            conn = RawClient.over(sock)
            first = json.loads(conn.request("/scope").body)
            second = json.loads(conn.request("/scope").body)
    assert first["tls"]["tls_version"] == second["tls"]["tls_version"] == 0x0303
    assert isinstance(first["tls"]["cipher_suite"], int)
    if model == "fork":  # one connection, kept by the parent; a child per request
        assert first["pid"] != second["pid"]
        assert server.proc.pid not in (first["pid"], second["pid"])


@pytest.mark.parametrize("model", MODELS)
def test_wss(spawn_qactuar, certs, model):
    server = serve(spawn_qactuar, certs, model)
    url = f"wss://127.0.0.1:{server.port}/ws"
    with connect(url, ssl=certs.context(), open_timeout=10, close_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["scheme"] == "wss"
        assert hello["tls"]["tls_version"] == 0x0304
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=10) == b"\x00" * 100_000


@pytest.mark.parametrize("model", MODELS)
def test_a_required_client_certificate_is_in_the_scope(spawn_qactuar, certs, model):
    server = serve(spawn_qactuar, certs, model, "--ssl-ca-certs", certs.ca_pem,
                   "--ssl-cert-reqs", "required")
    with client(certs, server, client_cert=True) as http:
        tls = http.get("/scope").json()["tls"]
    assert tls["client_cert_chain"][0] == pem(certs.client.cert_chain_pems[0])
    assert tls["client_cert_name"] == subject(certs.client)
    # without one, the connection is refused (TLS 1.3: at the first read)
    with pytest.raises((httpx.TransportError, ssl.SSLError)):
        with client(certs, server) as http:
            http.get("/scope")
    with client(certs, server, client_cert=True) as http:  # the server goes on
        assert http.get("/scope").status_code == 200


def test_an_optional_client_certificate(spawn_qactuar, certs):
    server = serve(spawn_qactuar, certs, "fork", "--ssl-ca-certs", certs.ca_pem,
                   "--ssl-cert-reqs", "optional")
    with client(certs, server) as http:
        assert http.get("/scope").json()["tls"]["client_cert_chain"] == []
    with client(certs, server, client_cert=True) as http:
        tls = http.get("/scope").json()["tls"]
    assert tls["client_cert_name"] == subject(certs.client)
    assert tls["client_cert_chain"][0] == pem(certs.client.cert_chain_pems[0])


@pytest.mark.parametrize("model", MODELS)
def test_plain_and_silent_clients_cost_only_their_connection(spawn_qactuar, certs, model):
    server = serve(spawn_qactuar, certs, model, "--ssl-handshake-timeout", "1")
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    plain = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        with client(certs, server) as http:
            assert http.get("/scope").status_code == 200
        assert time.monotonic() - started < 5
        # the plain client is dropped at once, the silent one after the timeout
        assert not read_until_closed(plain, 10).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert RawClient.over(silent).closed_by_server(10)
        assert time.monotonic() - started < 5
    finally:
        silent.close()
        plain.close()


@pytest.mark.parametrize("model", MODELS)
def test_a_large_upload_and_a_streamed_response(spawn_qactuar, certs, model):
    server = serve(spawn_qactuar, certs, model)
    body = os.urandom(1024 * 1024)
    with client(certs, server) as http:
        report = http.post("/upload", content=body).json()
        assert report["size"] == len(body)
        assert report["sha256"] == hashlib.sha256(body).hexdigest()
        chunks = []
        with http.stream("GET", "/stream?32") as response:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
        data = b"".join(chunks)
    assert len(data) == 32 * 65536
    assert data[:65536] == b"A" * 65536 and data[-65536:] == bytes([65 + 31 % 26]) * 65536


def served_cert(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw) as sock:
            der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_prefork_sighup_rereads_the_certificate(spawn_qactuar, certs, tmp_path):
    path = str(tmp_path / "server.pem")
    certs.server.private_key_and_cert_chain_pem.write_to_path(path)
    server = spawn_qactuar("tls_app:app", "--model", "prefork", "--workers", "1",
                           "--ssl-cert-path", path)
    old = served_cert(server.port)
    assert old == ssl.PEM_cert_to_DER_cert(certs.server.cert_chain_pems[0].bytes().decode())
    renewed = certs.ca.issue_cert("127.0.0.1")
    renewed.private_key_and_cert_chain_pem.write_to_path(path)
    assert served_cert(server.port) == old  # nothing changes before the signal
    server.signal(signal.SIGHUP)
    new = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    wait_until(lambda: served_cert(server.port) == new, 20,
               what="the renewed certificate to be served", interval=0.1)
    # a broken file at the next SIGHUP keeps the workers serving the last good one
    with open(path, "w") as fh:
        fh.write("not a certificate")
    server.signal(signal.SIGHUP)
    server.wait_for_log("SIGHUP: config SSL_CERT_PATH")
    assert served_cert(server.port) == new


def run_hello(*args: str) -> subprocess.CompletedProcess[str]:
    """``qactuar basic:hello --port 0 <args>``, expected to stop at start-up."""
    return run_qactuar("basic:hello", "--port", "0", *args)


@pytest.fixture(scope="module")
def encrypted_key(certs: Certs) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.server.private_key_pem.bytes(), None)
    path = certs.root / "encrypted-key.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret")))
    return str(path)


@pytest.mark.parametrize("args, key", [
    (["--ssl-cert-reqs", "required"], "SSL_CERT_REQS"),
    (["--ssl-ca-certs", "/no/such/ca.pem"], "SSL_CA_CERTS"),
    (["--ssl-ciphers", "NO-SUCH-CIPHER"], "SSL_CIPHERS"),
    (["--ssl-key-path", "{encrypted}"], "SSL_KEYFILE_PASSWORD"),
    (["--ssl-key-path", "{encrypted}", "--ssl-keyfile-password", "wrong"],
     "SSL_KEYFILE_PASSWORD"),
    (["--ssl-key-path", "{ca}"], "SSL_CERT_PATH"),
])
def test_tls_settings_that_do_not_load_are_one_line(certs, encrypted_key, args, key):
    args = [a.format(encrypted=encrypted_key, ca=certs.ca_pem) for a in args]
    result = run_hello("--ssl-cert-path", certs.server_pem, *args)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert key in lines[0] and "'wrong'" not in lines[0]  # a password is never shown


def test_tls_settings_without_a_certificate_are_refused():
    result = run_hello("--ssl-ca-certs", "/etc/hostname")
    assert result.returncode == 2
    assert "SSL_CA_CERTS" in result.stderr and "needs SSL_CERT_PATH" in result.stderr


def test_an_encrypted_key_with_its_password(spawn_qactuar, certs, encrypted_key):
    chain = certs.root / "chain.pem"
    certs.server.cert_chain_pems[0].write_to_path(str(chain))
    server = spawn_qactuar("tls_app:app", "--model", "async", "--ssl-cert-path", str(chain),
                           "--ssl-key-path", encrypted_key, "--ssl-keyfile-password", "s3cret")
    server.url = f"https://127.0.0.1:{server.port}"
    with client(certs, server) as http:
        assert http.get("/scope").json()["scheme"] == "https"


@pytest.mark.parametrize("attributes", [
    [("commonName", "plain")],
    [("countryName", "FR"), ("organizationName", "A, B + C"), ("commonName", "#hash ")],
    [("organizationalUnitName", ' lead"quote;<>\\'), ("emailAddress", "x@example.org")],
])
def test_client_cert_name_is_rfc_4514(attributes):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from qactuar.server.tls import rfc4514_name

    oids = {"commonName": NameOID.COMMON_NAME, "countryName": NameOID.COUNTRY_NAME,
            "organizationName": NameOID.ORGANIZATION_NAME,
            "organizationalUnitName": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "emailAddress": NameOID.EMAIL_ADDRESS}
    name = x509.Name([x509.NameAttribute(oids[key], value) for key, value in attributes])
    subject = tuple(((key, value),) for key, value in attributes)  # as getpeercert() gives it
    assert rfc4514_name(subject) == name.rfc4514_string()


def test_ssl_ciphers_chooses_the_tls_1_2_suite(spawn_qactuar, certs):
    # trustme's keys are ECDSA: ECDHE-ECDSA-AES128-GCM-SHA256 is suite 0xC02B
    server = serve(spawn_qactuar, certs, "async", "--ssl-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
    context = certs.context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            tls = json.loads(RawClient.over(sock).request("/scope").body)["tls"]
    assert (tls["tls_version"], tls["cipher_suite"]) == (0x0303, 0xC02B)


@pytest.mark.parametrize("model, loop", [
    ("async", "uvloop"), ("async", "asyncio"), ("fork", "uvloop"), ("fork", "asyncio"),
])
def test_an_idle_keep_alive_client_does_not_hold_a_graceful_stop(spawn_qactuar, certs, model,
                                                                  loop):
    # Closing a TLS connection waits for the client's close_notify; a client
    # that keeps its connection open without reading never sends one.
    server = serve(spawn_qactuar, certs, model, "--loop", loop)
    with tls_socket(certs, server.port) as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert RawClient.over(sock).response().status == 200
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(40) == 0
        assert time.monotonic() - started < 3.5
    assert "Graceful timeout" not in server.output()
