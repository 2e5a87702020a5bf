"""``peer_gone``: a client's FIN seen before the event loop has read it.

A WebSocket app that accepts after its client left must get the ASGI
OSError, even when the loop has not yet run the read that would tell it (a
loaded machine: the fork model's test of it failed in CI when the app's
accept ran in the same loop turn as the FIN's arrival).
"""

from __future__ import annotations

import socket
from typing import Any

from qactuar.server.sockets import peer_gone


class _Transport:
    def __init__(self, sock: socket.socket | None, closing: bool = False) -> None:
        self.sock, self.closing = sock, closing

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


def test_a_fin_is_seen_and_nothing_is_taken_from_the_socket() -> None:
    ours, client = socket.socketpair()
    with ours, client:
        transport: Any = _Transport(ours)
        assert peer_gone(transport) is False  # open, nothing sent
        client.sendall(b"x")
        assert peer_gone(transport) is False  # a byte waiting: not gone
        client.close()
        assert peer_gone(transport) is False  # the byte comes first
        assert ours.recv(1) == b"x"  # still there: the peek took nothing
        assert peer_gone(transport) is True  # now the FIN
        assert ours.fileno() >= 0  # and the socket is still ours


def test_a_socket_that_is_no_connection_is_not_taken_for_gone() -> None:
    with socket.socket() as unconnected:  # (the protocol tests' stand-in transport)
        assert peer_gone(_Transport(unconnected)) is False  # type: ignore[arg-type]


def test_no_transport_or_one_closing_is_gone() -> None:
    assert peer_gone(None) is True
    assert peer_gone(_Transport(None, closing=True)) is True  # type: ignore[arg-type]
    assert peer_gone(_Transport(None)) is False  # type: ignore[arg-type]
