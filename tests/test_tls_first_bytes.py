"""A request that arrives with the client's last handshake message.

Under load, a TLS 1.3 client's Finished message and its first request often
reach the server in one read. The TLS layer then has application data as
soon as the handshake completes, before the task that started the handshake
runs again: the request must still be served as an HTTPS request of that
connection (the scope says ``https`` and carries the TLS extension; in the
fork model a child never writes to the socket in plain text).

The client here is an ``ssl`` memory BIO, so the test sends the two in one
``sendall`` on purpose, every time.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import pytest
from tlscerts import MODELS, Certs, serve


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def _pump(sock: socket.socket, incoming: ssl.MemoryBIO, deadline: float) -> bool:
    """Read what the server sent into ``incoming``; False once it closed."""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    data = sock.recv(65536)
    if not data:
        incoming.write_eof()
        return False
    incoming.write(data)
    return True


def request_with_the_finished_message(certs: Certs, port: int, request: bytes) -> bytes:
    """Handshake in memory, then send the Finished message and ``request`` together."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = certs.context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    deadline = time.monotonic() + 10
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                assert _pump(sock, incoming, deadline), "the server closed in the handshake"
        # The client's handshake is done; its Finished is still in ``outgoing``.
        tls.write(request)
        sock.sendall(outgoing.read())
        response = b""
        while b"\r\n\r\n" not in response or not response.endswith(b"}"):
            assert time.monotonic() < deadline, f"no whole response in 10 s: {response!r}"
            try:
                response += tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            assert _pump(sock, incoming, deadline), f"closed after {response!r}"
        return response


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("model", MODELS)
def test_a_request_in_the_same_read_as_the_finished_message(spawn_qactuar, certs, model, loop):
    server = serve(spawn_qactuar, certs, model, "--loop", loop)
    for _ in range(3):
        response = request_with_the_finished_message(
            certs, server.port,
            b"GET /scope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), response
        scope = json.loads(body)
        assert scope["scheme"] == "https"
        assert scope["tls"]["tls_version"] == 0x0304
