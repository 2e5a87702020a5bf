"""The one raw HTTP/1.1 reader: exact bytes out, framed responses in, every read bounded.

``RawClient(port)`` (or ``RawClient.over(sock)`` for a socket already open,
e.g. a TLS one) sends bytes and reads responses by their framing
(Content-Length, chunked, or until close), keeping surplus bytes for the
next one. A read that does not complete in time raises ``TimeoutError``; the
end of the stream where a response was due raises ``EOFError``: never an
empty answer. ``read_until_closed`` reads to the end of the stream and, if
the peer does not close in time, raises too.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx

READ_TIMEOUT = 5.0


class RawResponse:
    def __init__(self, status: int, status_line: bytes, headers: list[tuple[bytes, bytes]],
                 body: bytes, raw_body: bytes, interim: list[bytes]) -> None:
        self.status = status
        self.status_line = status_line
        #: (lower-cased name, value) in order
        self.headers = headers
        self.body = body
        #: the body bytes as framed on the wire (chunk sizes included)
        self.raw_body = raw_body
        #: status lines of 1xx responses that came first
        self.interim = interim

    def get(self, name: bytes | str) -> list[bytes]:
        key = name.lower().encode("latin-1") if isinstance(name, str) else name.lower()
        return [v for n, v in self.headers if n == key]

    def header(self, name: bytes | str) -> bytes | None:
        values = self.get(name)
        assert len(values) <= 1, (name, values)
        return values[0] if values else None

    def text_header(self, name: str) -> str | None:
        """A header's value as text (latin-1), or None."""
        value = self.header(name)
        return None if value is None else value.decode("latin-1")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<RawResponse {self.status_line!r} {self.headers!r} {self.body[:80]!r}>"


class RawClient:
    """A socket with a buffer: send bytes, read framed responses, all within deadlines."""

    def __init__(self, port: int, timeout: float = READ_TIMEOUT, host: str = "127.0.0.1",
                 sock: socket.socket | None = None) -> None:
        self.sock = sock if sock is not None else socket.create_connection(
            (host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    @classmethod
    def over(cls, sock: socket.socket, timeout: float = READ_TIMEOUT) -> RawClient:
        """A client on a socket already connected (TLS, a PROXY header sent, ...)."""
        return cls(0, timeout, sock=sock)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv(self, deadline: float) -> bytes:
        """One read: b"" at EOF (or a reset). TimeoutError past ``deadline``."""
        if self.eof:
            return b""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete response in time; buffered {self.buf[:200]!r}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
        except TimeoutError:
            raise TimeoutError(
                f"no complete response in time; buffered {self.buf[:200]!r}") from None
        if not data:
            self.eof = True
        return data

    def _fill(self, deadline: float) -> bool:
        """Read once more into the buffer; False at EOF."""
        data = self._recv(deadline)
        self.buf += data
        return bool(data)

    def _line(self, deadline: float) -> bytes:
        for _ in range(100_000):
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2 :]
                return line
            if not self._fill(deadline):
                raise EOFError(f"connection closed mid-line: {self.buf!r}")
        raise AssertionError("unbounded line")

    def _exact(self, size: int, deadline: float) -> bytes:
        chunks, have = [self.buf], len(self.buf)  # joined once: no quadratic copying
        for _ in range(1_000_000):
            if have >= size:
                data = b"".join(chunks)
                self.buf = data[size:]
                return data[:size]
            chunk = self._recv(deadline)
            if not chunk:
                self.buf = b"".join(chunks)
                raise EOFError(f"connection closed with {have} of {size} bytes")
            chunks.append(chunk)
            have += len(chunk)
        raise AssertionError("unbounded read")

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        """Everything up to and including ``marker``; EOFError if the stream ends first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        for _ in range(1_000_000):
            end = self.buf.find(marker)
            if end >= 0:
                data, self.buf = self.buf[: end + len(marker)], self.buf[end + len(marker) :]
                return data
            if not self._fill(deadline):
                raise EOFError(f"connection closed before {marker!r}: {self.buf[:200]!r}")
        raise AssertionError("unbounded read")

    def response(self, method: bytes = b"GET", timeout: float | None = None,
                 interim: bool = False) -> RawResponse:
        """The next response, its body read by its framing. 1xx interim responses are
        collected in its ``interim`` unless ``interim`` is set: then one is returned."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interims = []
        for _ in range(10):
            status_line = self._line(deadline)
            assert status_line.startswith(b"HTTP/1."), status_line
            status = int(status_line[9:12])
            headers = []
            for _ in range(1000):
                line = self._line(deadline)
                if not line:
                    break
                name, sep, value = line.partition(b":")
                assert sep and name == name.strip(), line
                headers.append((name.lower(), value.strip()))
            if status >= 200 or interim:
                break
            interims.append(status_line)
        else:
            raise AssertionError("too many interim responses")
        names = [n for n, _ in headers]
        if method == b"HEAD" or status in (204, 304) or status < 200:
            body = raw = b""
        elif b"transfer-encoding" in names:
            assert dict(headers)[b"transfer-encoding"].lower() == b"chunked", headers
            assert b"content-length" not in names, headers
            body, raw = b"", b""
            for _ in range(1_000_000):
                size_line = self._line(deadline)
                raw += size_line + b"\r\n"
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    for _ in range(100):
                        trailer = self._line(deadline)
                        raw += trailer + b"\r\n"
                        if not trailer:
                            break
                    break
                chunk = self._exact(size + 2, deadline)
                assert chunk.endswith(b"\r\n"), chunk[-10:]
                raw += chunk
                body += chunk[:-2]
        elif b"content-length" in names:
            assert names.count(b"content-length") == 1, headers
            body = raw = self._exact(int(dict(headers)[b"content-length"]), deadline)
        else:
            self.read_to_close(deadline - time.monotonic())
            body = raw = self.buf
            self.buf = b""
        return RawResponse(status, status_line, headers, body, raw, interims)

    def request(self, path: str, method: str = "GET", body: bytes = b"",
                headers: tuple[tuple[str, str], ...] = ()) -> RawResponse:
        """Send one request (HTTP/1.1, Host: test) and read its response."""
        self.send(encode_request(path, method, body, headers))
        return self.response(method.encode())

    def read_to_close(self, timeout: float | None = None) -> bytes:
        """Read until the server ends the stream; TimeoutError if it does not in time."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        chunks = [self.buf]
        try:
            for _ in range(1_000_000):
                chunk = self._recv(deadline)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
            raise AssertionError("unbounded read")
        finally:
            self.buf = b"".join(chunks)

    def closed_by_server(self, timeout: float = READ_TIMEOUT) -> bool:
        """True if the server closes the connection (nothing more sent) within ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            for _ in range(1000):
                if self.buf:
                    return False
                if not self._fill(deadline):
                    return True
        except TimeoutError:
            return False
        return False

    def nothing_within(self, timeout: float) -> bool:
        """True if the server neither sends nor closes within ``timeout``."""
        if self.buf:
            return False
        try:
            self._fill(time.monotonic() + timeout)
        except TimeoutError:
            return True
        return False


def encode_request(path: str, method: str = "GET", body: bytes = b"",
                   headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
    for name, value in headers:
        head += f"{name}: {value}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def read_until_closed(sock: socket.socket, timeout: float = READ_TIMEOUT) -> bytes:
    """All ``sock`` receives until the peer closes it (or resets it).

    TimeoutError if the peer has not closed within ``timeout``: a server
    that hangs is never an empty (or a partial) answer.
    """
    return RawClient.over(sock, timeout).read_to_close(timeout)


def exchange(port: int, data: bytes, timeout: float = READ_TIMEOUT,
             host: str = "127.0.0.1") -> bytes:
    """Send ``data`` on a new connection; everything until the server closes it."""
    with RawClient(port, timeout, host) as client:
        client.send(data)
        return client.read_to_close()


def still_served(url: str) -> None:
    """A second, ordinary client is served: the server is fine."""
    response = httpx.get(url + "/", timeout=READ_TIMEOUT)
    assert response.status_code == 200
