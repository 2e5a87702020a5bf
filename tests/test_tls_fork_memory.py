"""The fork model over TLS: a client flooding an app that never reads costs the parent little.

A TLS connection's requests are served by the parent, its app replaced by the
relay (``qactuar/models/relay.py``), whose pump passes ``receive()`` to the
child ahead of the app. That pump waits for the socketpair's write buffer to
drain, so when the app reads nothing the parent stops asking ``receive()``,
the WebSocket session stops reading its client at ``WS_MAX_QUEUE`` messages,
and a request body (already whole in the parent, in a spool) goes to the
child 64 KiB at a time, never copied whole into the socketpair's buffer.
Without that wait the parent held every byte the client sent: +58 MiB for a
50 MiB WebSocket flood, +100 MiB for a 50 MiB body (measured).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from support import RawClient, fork_children, rss_kib, wait_until
from tlscerts import Certs, tls_socket
from wsraw import BINARY, ZERO_MASK, encode_frame, handshake_request

FLOOD = 50 << 20
#: The parent may grow by this much (socket buffers, a queue of messages, allocator slack).
BOUND_KIB = 20 << 10
#: A send blocked this long: the server stopped reading (bounded), so stop sending.
STALL = 1.5


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def flood(sock: Any, piece: bytes, pid: int) -> tuple[int, int]:
    """Send up to FLOOD bytes as ``piece``s until a send stalls: (bytes sent, peak RSS KiB)."""
    sent, peak = 0, rss_kib(pid)
    sock.settimeout(STALL)
    for _ in range(FLOOD // len(piece) + 1):
        if sent >= FLOOD:
            break
        try:
            sock.sendall(piece)
        except TimeoutError:
            break
        sent += len(piece)
        peak = max(peak, rss_kib(pid))
    return sent, max(peak, rss_kib(pid))


def test_fork_a_websocket_app_that_never_receives_keeps_a_tls_flood_out_of_the_parent(
    spawn_qactuar, certs
):
    server = spawn_qactuar("deaf_app:app", "--model", "fork", "--ssl-cert-path",
                           certs.server_pem, "--graceful-timeout", "0.5")
    sock = tls_socket(certs, server.port)
    try:
        sock.sendall(handshake_request("/ws", server.port))
        reader = RawClient.over(sock, 10)
        assert reader.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        reader.read_until(b"accepted")  # the app runs in its child and receives no more
        (child,) = fork_children(server.proc.pid)
        before, child_before = rss_kib(server.proc.pid), rss_kib(child)
        message = encode_frame(BINARY, b"m" * 1024, mask=ZERO_MASK)
        sent, peak = flood(sock, message * 1024, server.proc.pid)  # 1 KiB messages, 1 MiB a send
        child_grew = rss_kib(child) - child_before
    finally:
        sock.close()
    assert peak - before < BOUND_KIB, f"+{peak - before} KiB in the parent for {sent} bytes sent"
    # the child is sent at most _AHEAD messages ahead of its app, not all it can read
    assert child_grew < BOUND_KIB, f"+{child_grew} KiB in the child for {sent} bytes sent"


def test_fork_a_websocket_app_that_only_sends_is_told_its_flooding_client_left(
    spawn_qactuar, certs
):
    # The child reads every frame the parent sends it: the _ERROR frame
    # saying the client left once sat behind the messages its app never
    # received, the child's reading paused, and the app (WebSockets are
    # exempt from REQUEST_TIMEOUT) sent into the void, holding its child forever.
    server = spawn_qactuar("deaf_app:app", "--model", "fork", "--ssl-cert-path",
                           certs.server_pem, "--graceful-timeout", "0.5")
    sock = tls_socket(certs, server.port)
    try:
        sock.sendall(handshake_request("/ws-ticks", server.port))
        reader = RawClient.over(sock, 10)
        assert reader.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        reader.read_until(b"tick")
        (child,) = fork_children(server.proc.pid)
        message = encode_frame(BINARY, b"m" * 1024, mask=ZERO_MASK)
        sock.sendall(message * 1024)  # 1 MiB: more than the socketpair and the queues hold
    finally:
        sock.close()
    wait_until(lambda: child not in fork_children(server.proc.pid), 10,
               what="the child to end once its app's send() raised")


def test_fork_a_tls_body_the_app_never_reads_goes_to_its_child_in_bounded_pieces(
    spawn_qactuar, certs
):
    # the body is whole in the parent (a spool, on disk past BODY_BUFFER_BYTES)
    # before the child starts; the app answers, then stays in flight unread
    server = spawn_qactuar("deaf_app:app", "--model", "fork", "--ssl-cert-path",
                           certs.server_pem, "--graceful-timeout", "0.5")
    sock = tls_socket(certs, server.port)
    try:
        sock.sendall(f"POST /?30 HTTP/1.1\r\nHost: t\r\nContent-Length: {FLOOD}\r\n\r\n".encode())
        before = rss_kib(server.proc.pid)
        sent, peak = flood(sock, b"b" * (1 << 20), server.proc.pid)
        assert sent == FLOOD  # the parent reads a body whole before any child
        reader = RawClient.over(sock, 10)
        assert reader.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        reader.read_until(b"not read")  # the child runs; the relay pumped what it could
        time.sleep(0.2)  # (no event marks the pump's pause: let a paused pump show it is)
        peak = max(peak, rss_kib(server.proc.pid))
    finally:
        sock.close()
    assert peak - before < BOUND_KIB, f"+{peak - before} KiB in the parent for {sent} bytes sent"
