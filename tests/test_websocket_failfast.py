"""RFC 6455 §8.1 fail-fast: invalid UTF-8 fails the connection while its frame is still arriving.

Autobahn 6.4.3/6.4.4: a text frame whose header announces the whole payload,
then the payload in parts with pauses; the invalid part must bring the 1007
close at once, not when (if ever) the frame is complete. The end-to-end
tests send a frame's beginning and never its end, so only a fail-fast server
answers at all; ``TextScanner`` itself is tested fed byte by byte, so its
frame tracking holds across every split of the stream.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator

import pytest
from apps.ws import app as ws_app
from support import RunningServer, serve_qactuar
from wsraw import BINARY, CONT, PING, TEXT, RawWebSocket, encode_frame

from qactuar.websocket.failfast import TextScanner

VALID = "κόσμε".encode()  # 11 bytes
BEYOND_MAX = b"\xf4\x90\x80\x80"  # U+110000: invalid at its second byte


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_qactuar(ws_app, WS_PING_INTERVAL=0, ACCESS_LOG=False,
                       GRACEFUL_TIMEOUT=1) as running:
        yield running


def send_prefix(ws: RawWebSocket, frame: bytes, upto: int) -> None:
    """The frame's header and its first ``upto`` payload bytes (all frames here are < 126)."""
    ws.send(frame[: 6 + upto])


def test_6_4_3_invalid_bytes_in_an_unfinished_frame_close_1007(server: RunningServer) -> None:
    payload = VALID + BEYOND_MAX + b"edited"
    with RawWebSocket.open(server.port) as ws:
        frame = encode_frame(TEXT, payload, fin=False)
        send_prefix(ws, frame, len(VALID))
        ws.send(frame[6 + len(VALID): 6 + len(VALID) + 4])  # its last 6 bytes never come
        close = ws.read_close()
        assert close.close_code == 1007, close.payload


def test_6_4_4_the_invalid_byte_alone_closes_1007(server: RunningServer) -> None:
    """The valid prefix, then the single byte that makes it invalid, in its own write."""
    payload = VALID + BEYOND_MAX + b"edited"
    with RawWebSocket.open(server.port) as ws:
        frame = encode_frame(TEXT, payload, fin=False)
        send_prefix(ws, frame, 12)  # ends with 0xf4: still a valid beginning
        ws.send(frame[6 + 12: 6 + 13])  # 0x90: no code point starts f4 90
        close = ws.read_close()
        assert close.close_code == 1007, close.payload


def test_a_valid_unfinished_frame_is_waited_for(server: RunningServer) -> None:
    """No false alarm: a valid text frame in parts, a ping between, then its end."""
    with RawWebSocket.open(server.port) as ws:
        frame = encode_frame(TEXT, VALID + b" and more", fin=True)
        ws.send(frame[:8])  # header + 2 bytes: "κ"
        ws.send(frame[8:9])  # half of "ό"
        ws.send(frame[9:])
        reply = ws.read_message()
        assert (reply.opcode, reply.payload) == (TEXT, VALID + b" and more")


def stream() -> tuple[bytes, list[bytes]]:
    """Frames of every kind a text check must see through, and the text messages in it."""
    deflated = zlib.compressobj(wbits=-15)
    compressed = deflated.compress(b"\xff not text") + deflated.flush(zlib.Z_SYNC_FLUSH)
    frames = [
        encode_frame(TEXT, VALID),
        encode_frame(BINARY, b"\xff\xfe" * 200),  # 400 bytes: a 16-bit length
        encode_frame(TEXT, VALID[:3], fin=False),  # a code point split across fragments
        encode_frame(PING, b"\xff"),  # control frames are not text
        encode_frame(CONT, VALID[3:] + b"x" * 70000),  # a 64-bit length
        encode_frame(TEXT, b""),
        encode_frame(BINARY, b"", fin=False),
        encode_frame(CONT, b"\xed\xa0\x80"),  # binary continuation: anything goes
        encode_frame(TEXT, compressed[:-4], rsv=4),  # checked once inflated, not here
    ]
    return b"".join(frames), frames


@pytest.mark.parametrize("piece", [1, 3, 7, 4096], ids=lambda n: f"{n}-byte-reads")
def test_scanner_follows_frames_across_any_split(piece: int) -> None:
    data, _ = stream()
    scanner = TextScanner(compression=True)
    for i in range(0, len(data), piece):
        assert not scanner.invalid(data[i:i + piece]), i
    # still in step: the next frame's bad byte is found, in the middle of its payload
    bad = encode_frame(TEXT, b"ok \xc0 never", fin=True)
    assert not scanner.invalid(bad[:9])
    assert scanner.invalid(bad[9:10])


def test_scanner_without_deflate_checks_an_rsv1_text_frame() -> None:
    """Without a negotiated extension RSV1 is the parser's error; the text is plain text."""
    scanner = TextScanner(compression=False)
    assert scanner.invalid(encode_frame(TEXT, b"\xff", rsv=4))


def test_scanner_stops_at_what_the_parser_refuses() -> None:
    scanner = TextScanner(compression=False)
    assert not scanner.invalid(encode_frame(TEXT, b"\xff", mask=b""))  # unmasked
    assert not scanner.invalid(encode_frame(TEXT, b"\xff"))  # and nothing after it


def test_scanner_random_splits_of_valid_text() -> None:
    data = b"".join(encode_frame(TEXT if i == 0 else CONT, "é€𝄞".encode() * 50, fin=i == 9)
                    for i in range(10))
    rng = random.Random(13)
    scanner = TextScanner(compression=False)
    i = 0
    while i < len(data):
        step = rng.randrange(1, 14)
        assert not scanner.invalid(data[i:i + step])
        i += step
