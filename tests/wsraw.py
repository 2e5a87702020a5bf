"""Raw WebSocket frames over a plain socket, for cases a client library refuses to send.

``RawWebSocket.open(port, path)`` does the opening handshake by hand and
returns the connection; ``send_frame`` writes any frame (bad opcodes,
reserved bits, unmasked, fragmented...), ``read_frame`` parses one server
frame with a deadline, ``read_close`` reads until the close frame and the
end of the stream. ``http_exchange`` sends a handshake and returns the HTTP
response for the handshake-rejection cases.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

from support import exchange, wait_until

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

ZERO_MASK = b"\x00\x00\x00\x00"


def handshake_request(path: str = "/echo", port: int = 0, *, method: str = "GET",
                      key: str | None = "dGhlIHNhbXBsZSBub25jZQ==", version: str | None = "13",
                      extra: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    for name, value in extra or ():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                 mask: bytes | None = None) -> bytes:
    """One frame; ``mask`` None means a random mask, b"" means unmasked."""
    if mask is None:
        mask = os.urandom(4)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    if mask == ZERO_MASK:
        return head + mask + payload
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big") if length else b""
    return head + mask + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def deflate(data: bytes) -> bytes:
    """permessage-deflate payload of ``data`` (RFC 7692 §7.2.1: trailing 00 00 ff ff cut)."""
    comp = zlib.compressobj(wbits=-15)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")


class RawWebSocket:
    def __init__(self, sock: socket.socket, response: bytes, buffer: bytes) -> None:
        self.sock = sock
        self.response = response
        self.buffer = buffer

    @classmethod
    def open(cls, port: int, path: str = "/echo", *, timeout: float = 5,
             extra: list[tuple[str, str]] | None = None) -> RawWebSocket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(handshake_request(path, port, key=key, extra=extra))
        buffer = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no handshake response")
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed during the handshake: {buffer!r}")
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            sock.close()
            raise ConnectionError(f"handshake refused: {head!r}")
        return cls(sock, head, rest)

    @classmethod
    def open_unanswered(cls, port: int, path: str, timeout: float = 5) -> RawWebSocket:
        """Send a handshake and return at once, without waiting for the answer."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(handshake_request(path, port, key=key))
        return cls(sock, b"", b"")

    def header(self, name: str) -> str | None:
        for line in self.response.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: object) -> None:
        self.sock.sendall(encode_frame(opcode, payload, **kwargs))  # type: ignore[arg-type]

    def _need(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"waited for {n} bytes, have {len(self.buffer)}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"stream ended with {len(self.buffer)} of {n} bytes")
            self.buffer += data
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read_frame(self, timeout: float = 5) -> Frame:
        deadline = time.monotonic() + timeout
        first, second = self._need(2, deadline)
        assert not second & 0x80, "a server frame must not be masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._need(2, deadline))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._need(8, deadline))[0]
        payload = self._need(length, deadline)
        return Frame(bool(first & 0x80), (first >> 4) & 7, first & 0x0F, payload)

    def read_message(self, timeout: float = 5) -> Frame:
        """The next data frame, skipping pings the server might send."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode != PING:
                return frame

    def read_close(self, timeout: float = 5) -> Frame:
        """Frames up to the server's close frame; then the stream must end."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode == CLOSE:
                break
        self.expect_eof(max(0.01, deadline - time.monotonic()))
        return frame

    def expect_eof(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server did not end the stream")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return
            if not data:
                return
            self.buffer += data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_exchange(port: int, request: bytes, timeout: float = 5) -> tuple[int, dict[str, str],
                                                                          bytes]:
    """Send ``request``; the response, read until the server closes: status, headers, body.

    TimeoutError if the server does not close in time (support.exchange).
    """
    head, _, body = exchange(port, request, timeout).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def read_report(directory: str, ident: str, timeout: float = 5) -> dict[str, Any]:
    """The disconnect message tests/apps/ws.py wrote for connection ``ident``, once it has."""
    path = os.path.join(directory, f"{ident}.json")

    def report() -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as fh:
                return dict(json.load(fh)["message"])
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # not yet, or not all written yet

    found = wait_until(report, timeout, what=f"the app's disconnect report for {ident}")
    assert found is not None
    return found
