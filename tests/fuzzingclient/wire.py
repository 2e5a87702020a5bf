"""The fuzzing client's connection: raw frames out, parsed frames in, the close rules.

What Autobahn|Testsuite's ``FuzzingProtocol`` does on top of autobahn's
``WebSocketProtocol`` (client side), rewritten for blocking sockets and one
``select`` loop: ``send_frame`` writes any frame at all (bad RSV bits, reserved
opcodes, oversized control frames, a ``payload_len`` filled by repeating the
payload, ``chopsize`` writes, ``sync`` writes); ``kill_after``,
``close_after`` and ``later`` are its timers; the close handshake keeps the
same facts the verdict reads (``closed_by_me``, ``dropped_by_me``,
``was_clean``, ``remote_close_code``), with autobahn's client timeouts
(close handshake 1 s, server connection drop 1 s).

A frame from the server that breaks RFC 6455 (masked, RSV bits without an
extension, reserved opcode, bad close payload, invalid UTF-8 text) fails the
connection by drop, as autobahn's client does; it is also kept in
``violation`` so the verdict can name it.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

OPEN, CLOSING, CLOSED = "open", "closing", "closed"
CLOSE_TIMEOUT = 1.0  # autobahn: closeHandshakeTimeout
DROP_TIMEOUT = 1.0  # autobahn: serverConnectionDropTimeout
VALID_CLOSE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}

Event = tuple[Any, ...]


def frame_bytes(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                payload_len: int | None = None, mask: bool = True) -> bytes:
    """One client frame; ``payload_len`` repeats ``payload`` up to that length."""
    if payload_len is not None and payload_len != len(payload):
        reps, rest = divmod(payload_len, len(payload)) if payload else (0, 0)
        payload = payload * reps + payload[:rest]
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 15)])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    if not data:
        return b""
    key = key[offset % 4:] + key[:offset % 4]
    reps = len(data) // 4 + 1
    masker = int.from_bytes((key * reps)[: len(data)], "big")
    return (int.from_bytes(data, "big") ^ masker).to_bytes(len(data), "big")


class Deflate:
    """permessage-deflate as the server's response set it up (RFC 7692)."""

    def __init__(self, params: dict[str, str | None]) -> None:
        self.params = params
        bits = params.get("client_max_window_bits")
        self.client_bits = max(9, int(bits)) if bits else 15
        self.client_reset = "client_no_context_takeover" in params
        self.server_reset = "server_no_context_takeover" in params
        self._out = self._new_compressor()
        self._in = zlib.decompressobj(-15)

    def _new_compressor(self) -> Any:
        return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.client_bits)

    def compress(self, data: bytes) -> bytes:
        if self.client_reset:
            self._out = self._new_compressor()
        out: bytes = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out

    def decompress(self, data: bytes) -> bytes:
        if self.server_reset:
            self._in = zlib.decompressobj(-15)
        return self._in.decompress(data + b"\x00\x00\xff\xff")


def parse_extensions(header: str) -> list[tuple[str, dict[str, str | None]]]:
    found = []
    for item in filter(None, (part.strip() for part in header.split(","))):
        name, *params = [p.strip() for p in item.split(";")]
        values: dict[str, str | None] = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip()] = value.strip().strip('"') or None
        found.append((name, values))
    return found


class Session:
    """One case's connection; the case object gets ``on_open`` and the events."""

    def __init__(self, host: str, port: int, path: str, offers: list[str] | None = None,
                 open_timeout: float = 5.0, slack: float = 1.0) -> None:
        self.host, self.port, self.path = host, port, path
        self.slack = slack  # multiplies the close handshake timeouts
        self.offers = offers or []
        self.open_timeout = open_timeout
        self.sock: socket.socket | None = None
        self.state = CLOSED
        self.connection_was_open = False
        self.closed_by_me = self.dropped_by_me = self.failed_by_me = False
        self.was_clean = False
        self.remote_close_code: int | None = None
        self.remote_close_reason = ""
        self.violation: str | None = None
        self.deflate: Deflate | None = None
        self.tx_frames: dict[int, int] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._buf = bytearray()
        self._msg: list[bytes] = []
        self._msg_opcode = 0
        self._msg_compressed = False
        self._case: Any = None
        self._stream = (b"\0" * 4, 0)

    # opening handshake -------------------------------------------------------

    def connect(self) -> bool:
        sock = socket.create_connection((self.host, self.port), timeout=self.open_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if self.offers:
            lines.append("Sec-WebSocket-Extensions: " + ", ".join(self.offers))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status, *fields = head.decode("latin-1").split("\r\n")
        if status.split(" ")[1:2] != ["101"]:
            return False
        for field in fields:
            name, _, value = field.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                for ext, params in parse_extensions(value):
                    if ext == "permessage-deflate":
                        self.deflate = Deflate(params)
        sock.settimeout(60)
        self._buf += rest
        self.state = OPEN
        self.connection_was_open = True
        return True

    # sending -------------------------------------------------------------------

    def write(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if self.state == CLOSED or self.sock is None:
            return
        try:
            if chopsize:
                for i in range(0, len(data), chopsize):
                    self.sock.sendall(data[i:i + chopsize])
            else:
                self.sock.sendall(data)
        except OSError:
            self._lost()

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                   payload_len: int | None = None, chopsize: int | None = None,
                   sync: bool = False) -> None:
        self.tx_frames[opcode] = self.tx_frames.get(opcode, 0) + 1
        self.write(frame_bytes(opcode, payload, fin, rsv, payload_len), sync, chopsize)

    def begin_frame(self, opcode: int, length: int, fin: bool = False) -> None:
        """A frame header alone; its payload follows by ``frame_data`` (autobahn's
        ``beginMessageFrame``/``sendMessageFrameData``)."""
        head = frame_bytes(opcode, b"\0" * length, fin)[: -length or None]
        self._stream = (head[-4:], 0)
        self.tx_frames[opcode] = self.tx_frames.get(opcode, 0) + 1
        self.write(head)

    def frame_data(self, data: bytes) -> None:
        key, offset = self._stream
        self._stream = (key, offset + len(data))
        self.write(apply_mask(data, key, offset), sync=True)

    def send_message(self, payload: bytes, binary: bool, fragment_size: int = 0) -> None:
        """A whole message, compressed when deflate was agreed, in ``fragment_size`` frames."""
        rsv = 0
        if self.deflate is not None:
            payload, rsv = self.deflate.compress(payload), 4
        opcode = 2 if binary else 1
        if not fragment_size or len(payload) <= fragment_size:
            self.send_frame(opcode, payload, rsv=rsv)
            return
        for i in range(0, len(payload), fragment_size):
            last = i + fragment_size >= len(payload)
            self.send_frame(opcode if i == 0 else 0, payload[i:i + fragment_size], fin=last,
                            rsv=rsv if i == 0 else 0)

    def send_close_frame(self, code: int | None = None, reason: bytes | None = None,
                         reply: bool = False) -> None:
        """Any close frame (the fuzzer's ``sendCloseFrame``): no check of code or reason."""
        if self.state != OPEN:
            return  # autobahn ignores a second close while closing
        payload = (struct.pack("!H", code) if code is not None else b"") + (reason or b"")
        self.send_frame(8, payload)
        if self.state == CLOSED:
            return  # the server had gone: the write failed
        self.state = CLOSING
        if reply:
            self.at(DROP_TIMEOUT * self.slack, self._server_drop_timeout)
        else:
            self.closed_by_me = True
            self.at(CLOSE_TIMEOUT * self.slack, self._close_timeout)

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        self.send_close_frame(code, reason.encode() if code is not None and reason else None)

    # timers --------------------------------------------------------------------------

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        self._timers.append((time.monotonic() + delay, self._seq, fn))

    def kill_after(self, delay: float) -> None:
        self.at(delay, self._kill)

    def _kill(self) -> None:
        # autobahn's failConnection, as its fuzzing client runs it (failByDrop
        # off): an open connection gets the client's own close, 1001, so a
        # server that ignored what it should have failed on is the wrong
        # endpoint to close; a closing one is dropped
        if self.state == OPEN:
            self.send_close(1001, "Going Away")
        elif self.state != CLOSED:
            self.fail("killAfter")

    def close_after(self, delay: float) -> None:
        self.at(delay, lambda: self.send_close() if self.state == OPEN else None)

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self.at(delay, fn)

    def _close_timeout(self) -> None:
        if self.state != CLOSED:
            self.was_clean = False
            self.fail("close handshake timeout")

    def _server_drop_timeout(self) -> None:
        if self.state != CLOSED:
            self.was_clean = False
            self.fail("server did not drop the TCP connection")

    # the loop ----------------------------------------------------------------------

    def run(self, case: Any, limit: float) -> None:
        """Until the connection is closed (by either side) or ``limit`` seconds passed."""
        self._case = case
        end = time.monotonic() + limit
        case.on_open()
        self._process()
        while self.state != CLOSED:
            now = time.monotonic()
            if now >= end:
                self.fail("case time limit")
                break
            due = [t for t in self._timers if t[0] <= now]
            if due:
                for timer in sorted(due):
                    self._timers.remove(timer)
                    timer[2]()
                continue
            wake = min([end] + [t[0] for t in self._timers])
            assert self.sock is not None
            ready, _, _ = select.select([self.sock], [], [], max(0.0, wake - now))
            if ready:
                try:
                    data = self.sock.recv(1 << 20)
                except OSError:
                    data = b""
                if not data:
                    self._lost()
                    break
                self._buf += data
                self._process()

    def fail(self, why: str) -> None:
        """Drop the TCP connection (autobahn's client fails by drop)."""
        if self.state == CLOSED:
            return
        self.failed_by_me = self.dropped_by_me = True
        self.was_clean = False
        self._lost()

    def _lost(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.state = CLOSED

    def _violate(self, why: str) -> None:
        self.violation = self.violation or why
        self.fail(why)

    def _process(self) -> None:
        buf = self._buf
        while self.state != CLOSED and len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            if b1 & 0x80:
                return self._violate("masked frame from the server")
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos:pos + n])
            del buf[:pos + n]
            self._frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 15, payload)

    def _frame(self, fin: bool, rsv: int, opcode: int, payload: bytes) -> None:
        case = self._case
        compressed_ok = self.deflate is not None and opcode in (1, 2)
        if rsv and not (rsv == 4 and compressed_ok):
            return self._violate(f"RSV {rsv} from the server")
        if opcode >= 8:
            if not fin or len(payload) > 125:
                return self._violate("bad control frame from the server")
            if opcode == 9:
                case.on_ping(payload)
                self.send_frame(10, payload)
            elif opcode == 10:
                case.on_pong(payload)
            elif opcode == 8:
                self._on_close(payload)
            else:
                self._violate(f"reserved opcode {opcode} from the server")
            return
        if opcode in (1, 2):
            if self._msg_opcode:
                return self._violate("new message before the last one ended")
            self._msg_opcode, self._msg_compressed, self._msg = opcode, bool(rsv), []
        elif opcode == 0:
            if not self._msg_opcode:
                return self._violate("continuation with no message")
        else:
            return self._violate(f"reserved opcode {opcode} from the server")
        self._msg.append(payload)
        if not fin:
            return
        data = b"".join(self._msg)
        binary = self._msg_opcode == 2
        if self._msg_compressed:
            assert self.deflate is not None
            data = self.deflate.decompress(data)
        self._msg_opcode = 0
        if not binary:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return self._violate("invalid UTF-8 text from the server")
        case.on_message(data, binary)

    def _on_close(self, payload: bytes) -> None:
        if len(payload) == 1:
            return self._violate("close payload of 1 byte from the server")
        if payload:
            code = struct.unpack("!H", payload[:2])[0]
            if not (code in VALID_CLOSE or 3000 <= code <= 4999):
                return self._violate(f"close code {code} from the server")
            try:
                self.remote_close_reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._violate("invalid UTF-8 close reason from the server")
            self.remote_close_code = code
        if self.state == CLOSING:  # the reply to ours
            self.was_clean = True
            self._timers = [t for t in self._timers if t[2] != self._close_timeout]
            self.at(DROP_TIMEOUT * self.slack, self._server_drop_timeout)
        elif self.state == OPEN:  # the server starts the handshake: answer 1000
            self.was_clean = True
            self.send_close_frame(1000, reply=True)
