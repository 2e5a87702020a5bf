"""TLS test helpers: certificates made with ``trustme``, servers and clients over TLS.

``Certs`` holds a CA, a server certificate for 127.0.0.1 and a client
certificate, written as PEM files into a temporary directory.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import httpx
import trustme

MODELS = ["fork", "async", "prefork"]


class Certs:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client = self.ca.issue_cert("client@example.org", common_name="Test, Client")
        self.server_pem = str(root / "server.pem")
        self.ca_pem = str(root / "ca.pem")
        self.client_pem = str(root / "client.pem")
        self.server.private_key_and_cert_chain_pem.write_to_path(self.server_pem)
        self.ca.cert_pem.write_to_path(self.ca_pem)
        self.client.private_key_and_cert_chain_pem.write_to_path(self.client_pem)

    def context(self, client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_pem)
        if client_cert:
            context.load_cert_chain(self.client_pem)
        return context


def serve(spawn_qactuar: Any, certs: Certs, model: str, *args: str) -> Any:
    extra = ("--workers", "2") if model == "prefork" else ()
    server = spawn_qactuar("tls_app:app", "--model", model, *extra,
                           "--ssl-cert-path", certs.server_pem, *args)
    server.url = f"https://127.0.0.1:{server.port}"
    return server


def client(certs: Certs, server: Any, client_cert: bool = False, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=certs.context(client_cert), timeout=10, **kw)


def tls_socket(certs: Certs, port: int, client_cert: bool = False) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return certs.context(client_cert).wrap_socket(raw, server_hostname="127.0.0.1")


def subject(cert: trustme.LeafCert) -> str:
    """The certificate's subject in RFC 4514 form, as the cryptography library writes it."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).subject.rfc4514_string()


def pem(cert_blob: Any) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(cert_blob.bytes().decode()))
