"""A minimal HTTP/1.1 reader for raw-socket tests: one response at a time."""

from __future__ import annotations

import socket
import time


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class RawConnection:
    """Reads responses off one socket, keeping surplus bytes for the next one."""

    def __init__(self, sock: socket.socket, timeout: float = 10) -> None:
        self.sock = sock
        self.buffer = b""
        self.timeout = timeout
        sock.settimeout(timeout)

    def _fill(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError("no complete response in time")
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"connection closed; buffered: {self.buffer[:200]!r}")
        self.buffer += data

    def read_response(self) -> RawResponse:
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill(deadline)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return RawResponse(status, headers, body)

    def request(self, path: str, method: str = "GET", body: bytes = b"") -> RawResponse:
        self.sock.sendall(self.encode(path, method, body))
        return self.read_response()

    @staticmethod
    def encode(path: str, method: str = "GET", body: bytes = b"") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body
