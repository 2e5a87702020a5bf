"""WebSocket protocol conformance over raw frames, named after RFC 6455 (and RFC 7692) sections.

A public suite was considered first: Autobahn|Testsuite (``autobahntestsuite``
on PyPI, 25.10.1) is Python 2 code (print statements, Twisted on Python 2)
and otherwise ships as a Docker image; neither Python 2 nor Docker is
available here, and Debian has only the Autobahn *library*. So the cases of
its sections 1-7 and 12-13 that apply to a server are written here, frame by
frame, against the async core serving ``tests/apps/ws.py`` (every model runs
the same ``WebSocketSession``; tests/test_websocket.py covers the models).
"""

from __future__ import annotations

import os
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from apps.ws import app as ws_app
from support import RunningServer, serve_qactuar
from wsraw import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Frame,
    RawWebSocket,
    close_payload,
    deflate,
    encode_frame,
    read_report,
)

DEFLATE = [("Sec-WebSocket-Extensions", "permessage-deflate")]


class Server:
    def __init__(self, running: RunningServer, report_dir: str) -> None:
        self.running = running
        self.port = running.port
        self.report_dir = report_dir

    def open(self, path: str = "/echo", **kwargs: Any) -> RawWebSocket:
        return RawWebSocket.open(self.port, path, **kwargs)

    def report(self, ident: str, timeout: float = 5) -> dict[str, Any]:
        return read_report(self.report_dir, ident, timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    report_dir = str(tmp_path_factory.mktemp("frames"))
    old = os.environ.get("QT_WS_REPORT_DIR")
    os.environ["QT_WS_REPORT_DIR"] = report_dir
    try:
        with serve_qactuar(ws_app, WS_PING_INTERVAL=0, ACCESS_LOG=False,
                           GRACEFUL_TIMEOUT=1) as running:
            yield Server(running, report_dir)
    finally:
        if old is None:
            os.environ.pop("QT_WS_REPORT_DIR", None)
        else:
            os.environ["QT_WS_REPORT_DIR"] = old


def expect_close(ws: RawWebSocket, code: int) -> Frame:
    frame = ws.read_close()
    assert frame.close_code == code, frame.payload
    return frame


def still_echoes(ws: RawWebSocket) -> None:
    ws.send_frame(TEXT, b"still here")
    reply = ws.read_message()
    assert (reply.opcode, reply.payload) == (TEXT, b"still here")


class Inflater:
    """The client's side of permessage-deflate for server messages (context takeover)."""

    def __init__(self) -> None:
        self.decoder = zlib.decompressobj(wbits=-15)

    def message(self, ws: RawWebSocket) -> tuple[int, bytes]:
        first = ws.read_message()
        frames = [first]
        while not frames[-1].fin:
            frames.append(ws.read_message())
        data = b"".join(f.payload for f in frames)
        if first.rsv & 4:
            data = self.decoder.decompress(data + b"\x00\x00\xff\xff")
        return first.opcode, data


# §5.2 base framing: payload lengths --------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_5_2_payload_length_encodings(server: Server, size: int) -> None:
    payload = os.urandom(size)
    with server.open() as ws:
        ws.send_frame(BINARY, payload)
        reply = ws.read_message()
        assert (reply.opcode, reply.fin, reply.payload) == (BINARY, True, payload)


def test_5_2_reserved_bits_without_an_extension_are_1002(server: Server) -> None:
    for rsv in (4, 2, 1):
        with server.open() as ws:
            ws.send_frame(TEXT, b"reserved", rsv=rsv)
            expect_close(ws, 1002)


def test_5_2_rsv2_and_rsv3_stay_reserved_with_deflate(server: Server) -> None:
    for rsv in (2, 1):
        with server.open(extra=DEFLATE) as ws:
            ws.send_frame(TEXT, b"reserved", rsv=rsv)
            expect_close(ws, 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_5_2_reserved_opcodes_are_1002(server: Server, opcode: int) -> None:
    with server.open() as ws:
        ws.send_frame(opcode, b"reserved opcode")
        expect_close(ws, 1002)


def test_5_2_reserved_opcode_after_a_valid_message(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"fine")
        assert ws.read_message().payload == b"fine"
        ws.send_frame(0x5, b"")
        expect_close(ws, 1002)


# §5.3 client-to-server masking ---------------------------------------------------------


def test_5_3_an_unmasked_frame_is_1002_even_after_masked_ones(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"masked")
        assert ws.read_message().payload == b"masked"
        ws.send_frame(BINARY, b"naked", mask=b"")
        expect_close(ws, 1002)


# §5.4 fragmentation ---------------------------------------------------------------------


def test_5_4_text_in_three_fragments_is_one_message(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"frag", fin=False)
        ws.send_frame(CONT, b"men", fin=False)
        ws.send_frame(CONT, b"ted")
        reply = ws.read_message()
        assert (reply.opcode, reply.fin, reply.payload) == (TEXT, True, b"fragmented")


def test_5_4_many_fragments_including_empty_ones(server: Server) -> None:
    parts = [os.urandom(n % 7) for n in range(200)]
    with server.open() as ws:
        ws.send_frame(BINARY, parts[0], fin=False)
        for part in parts[1:-1]:
            ws.send_frame(CONT, part, fin=False)
        ws.send_frame(CONT, parts[-1])
        assert ws.read_message().payload == b"".join(parts)


def test_5_4_a_codepoint_split_across_fragments_is_valid(server: Server) -> None:
    text = "κόσμε €𝄞".encode()
    with server.open() as ws:
        for i in range(len(text) - 1):  # one byte per fragment
            ws.send_frame(TEXT if i == 0 else CONT, text[i:i + 1], fin=False)
        ws.send_frame(CONT, text[-1:])
        assert ws.read_message().payload == text


def test_5_4_control_frames_between_fragments(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"one ", fin=False)
        ws.send_frame(PING, b"between")
        ws.send_frame(CONT, b"two ", fin=False)
        ws.send_frame(PONG, b"unsolicited")
        ws.send_frame(PING, b"again")
        ws.send_frame(CONT, b"three")
        frames = [ws.read_frame() for _ in range(3)]
        assert [(f.opcode, f.payload) for f in frames] == [
            (PONG, b"between"), (PONG, b"again"), (TEXT, b"one two three")]


def test_7_1_5_a_close_between_fragments_is_a_clean_close(server: Server) -> None:
    # Autobahn 7.1.5: a text message's first fragment, then a close, then the
    # rest: the close is echoed (1000) and the unfinished message is dropped
    with server.open() as ws:
        ws.send_frame(TEXT, b"fragment1", fin=False)
        ws.send_frame(CLOSE, close_payload(1000))
        ws.send_frame(CONT, b"fragment2")
        assert expect_close(ws, 1000).payload == close_payload(1000)
    with server.open() as ws:
        still_echoes(ws)


def test_5_4_continuation_without_a_start_is_1002(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(CONT, b"orphan")
        expect_close(ws, 1002)


def test_5_4_final_continuation_without_a_start_is_1002(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"complete")
        assert ws.read_message().payload == b"complete"
        ws.send_frame(CONT, b"orphan", fin=False)
        expect_close(ws, 1002)


def test_5_4_a_new_message_inside_a_fragmented_one_is_1002(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"first ", fin=False)
        ws.send_frame(BINARY, b"second")
        expect_close(ws, 1002)


def test_5_4_a_fragmented_control_frame_is_1002(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(PING, b"part", fin=False)
        ws.send_frame(CONT, b"rest")
        expect_close(ws, 1002)


# §5.5.2 / §5.5.3 ping and pong --------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125])
def test_5_5_2_ping_is_answered_with_its_payload(server: Server, size: int) -> None:
    payload = os.urandom(size)
    with server.open() as ws:
        ws.send_frame(PING, payload)
        pong = ws.read_frame()
        assert (pong.opcode, pong.fin, pong.payload) == (PONG, True, payload)
        still_echoes(ws)


def test_5_5_control_frame_over_125_bytes_is_1002(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(PING, b"x" * 126)
        expect_close(ws, 1002)


def test_5_5_3_unsolicited_pong_is_ignored(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(PONG, b"nobody asked")
        ws.send_frame(PONG, b"")
        still_echoes(ws)


def test_5_5_2_ten_pings_get_ten_pongs_in_order(server: Server) -> None:
    with server.open() as ws:
        for n in range(10):
            ws.send_frame(PING, b"ping %d" % n)
        assert [ws.read_frame().payload for _ in range(10)] == [b"ping %d" % n for n in range(10)]


# §5.5.1 / §7.4 close ---------------------------------------------------------------------


def test_5_5_1_close_without_a_payload_is_answered_and_the_app_sees_1005(server: Server) -> None:
    name = uuid.uuid4().hex
    with server.open(f"/echo?id={name}") as ws:
        ws.send_frame(CLOSE, b"")
        reply = ws.read_close()
        assert reply.payload in (b"", close_payload(1000))
    assert server.report(name)["code"] == 1005


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  3000, 3999, 4000, 4999])
def test_7_4_valid_close_codes_are_echoed(server: Server, code: int) -> None:
    name = uuid.uuid4().hex
    with server.open(f"/echo?id={name}") as ws:
        ws.send_frame(CLOSE, close_payload(code, "réason".encode()))
        reply = ws.read_close()
        assert reply.close_code == code
    report = server.report(name)
    assert (report["code"], report["reason"]) == (code, "réason")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
                                  65535])
def test_7_4_invalid_close_codes_are_1002(server: Server, code: int) -> None:
    with server.open() as ws:
        ws.send_frame(CLOSE, close_payload(code))
        expect_close(ws, 1002)


def test_5_5_1_a_one_byte_close_payload_is_1002(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(CLOSE, b"\x03")
        expect_close(ws, 1002)


def test_5_5_1_a_close_reason_that_is_not_utf8_is_1007(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(CLOSE, close_payload(1000, b"bad \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce"
                                           b"\xb5\xed\xa0\x80 reason"))
        expect_close(ws, 1007)


def test_5_5_1_a_123_byte_reason_is_fine(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(CLOSE, close_payload(1000, b"r" * 123))
        assert ws.read_close().close_code == 1000


def test_5_5_1_frames_after_a_close_are_ignored(server: Server) -> None:
    with server.open() as ws:
        ws.send(b"".join([
            encode_frame(CLOSE, close_payload(1000)), encode_frame(TEXT, b"too late"),
            encode_frame(PING, b"too late")]))
        frames = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            frame = ws.read_frame()
            frames.append(frame)
            if frame.opcode == CLOSE:
                break
        assert [f.opcode for f in frames] == [CLOSE]
        ws.expect_eof()


# §8.1 UTF-8 in text messages ---------------------------------------------------------


@pytest.mark.parametrize("payload", [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # a surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xc0\xaf",  # overlong
    b"\x80",  # lone continuation byte
    b"truncated \xe2\x82",
], ids=["surrogate", "beyond-max", "overlong", "continuation", "truncated"])
def test_8_1_invalid_utf8_in_a_text_message_is_1007(server: Server, payload: bytes) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, payload)
        expect_close(ws, 1007)


def test_8_1_invalid_utf8_in_a_fragmented_text_message_is_1007(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(TEXT, b"valid start ", fin=False)
        ws.send_frame(CONT, b"\xed\xa0\x80", fin=False)
        ws.send_frame(CONT, b" end")
        expect_close(ws, 1007)


def test_8_1_invalid_utf8_fails_fast_before_the_message_ends(server: Server) -> None:
    """Autobahn 6.4: the server closes on the bad fragment, not at the (never sent) end."""
    with server.open() as ws:
        ws.send_frame(TEXT, "κόσμε".encode(), fin=False)
        ws.send_frame(CONT, b"\xf4\x90\x80\x80", fin=False)
        expect_close(ws, 1007)


def test_8_1_invalid_utf8_in_a_binary_message_is_fine(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(BINARY, b"\xff\xfe\xed\xa0\x80")
        assert ws.read_message().payload == b"\xff\xfe\xed\xa0\x80"


# RFC 7692 permessage-deflate ------------------------------------------------------------


def test_rfc7692_compressed_messages_with_context_takeover(server: Server) -> None:
    compressor = zlib.compressobj(wbits=-15)
    inflater = Inflater()
    with server.open(extra=DEFLATE) as ws:
        assert (ws.header("sec-websocket-extensions") or "").startswith("permessage-deflate")
        for n in range(5):
            text = f"message {n} " * 50
            data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
            ws.send_frame(TEXT, data[:-4], rsv=4)
            opcode, echoed = inflater.message(ws)
            assert (opcode, echoed) == (TEXT, text.encode())


def test_rfc7692_short_replies_go_uncompressed_and_context_survives(server: Server) -> None:
    """The server deflates what is worth it: a 2-byte echo has RSV1 clear, a long one set,
    and the client's inflater (context takeover) follows across both kinds."""
    inflater = Inflater()
    with server.open(extra=DEFLATE) as ws:
        for n in range(3):
            ws.send_frame(TEXT, b"hi")
            short = ws.read_message()
            assert (short.rsv, short.payload) == (0, b"hi")
            long = (b"long and repetitive %d " % n) * 100
            ws.send_frame(TEXT, deflate(long), rsv=4)
            frame = ws.read_message()
            assert frame.rsv == 4 and len(frame.payload) < len(long) // 10
            data = inflater.decoder.decompress(frame.payload + b"\x00\x00\xff\xff")
            assert data == long


def test_rfc7692_7_1_negotiated_parameters_are_honoured(server: Server) -> None:
    """server_no_context_takeover: each server message inflates alone;
    client_max_window_bits=10: the server inflates a 1 KiB-window stream."""
    offer = ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
             "client_max_window_bits=10")
    with server.open(extra=[("Sec-WebSocket-Extensions", offer)]) as ws:
        answer = ws.header("sec-websocket-extensions") or ""
        assert answer.startswith("permessage-deflate")
        assert "server_no_context_takeover" in answer
        for n in range(3):
            text = (b"same words again and again %d " % n) * 40
            comp = zlib.compressobj(wbits=-10)
            data = comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH)
            ws.send_frame(TEXT, data[:-4], rsv=4)
            frame = ws.read_message()
            assert frame.rsv == 4
            fresh = zlib.decompressobj(wbits=-15)  # no context from earlier messages
            assert fresh.decompress(frame.payload + b"\x00\x00\xff\xff") == text


def test_rfc7692_fragmented_compressed_message(server: Server) -> None:
    text = ("fragmented and compressed, " * 200).encode()
    data = deflate(text)
    third = len(data) // 3
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(TEXT, data[:third], fin=False, rsv=4)
        ws.send_frame(PING, b"in between")
        ws.send_frame(CONT, data[third:2 * third], fin=False)
        ws.send_frame(CONT, data[2 * third:])
        pong = ws.read_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"in between")
        assert Inflater().message(ws) == (TEXT, text)


def test_rfc7692_one_byte_fragments_of_a_compressed_message(server: Server) -> None:
    payload = os.urandom(64) * 8
    data = deflate(payload)
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(BINARY, data[:1], fin=False, rsv=4)
        for i in range(1, len(data) - 1):
            ws.send_frame(CONT, data[i:i + 1], fin=False)
        ws.send_frame(CONT, data[-1:])
        assert Inflater().message(ws) == (BINARY, payload)


def test_rfc7692_uncompressed_message_on_a_deflate_connection(server: Server) -> None:
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(TEXT, b"plain")
        assert Inflater().message(ws) == (TEXT, b"plain")


def test_rfc7692_rsv1_on_a_continuation_frame_is_1002(server: Server) -> None:
    data = deflate(b"abc" * 100)
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(TEXT, data[:5], fin=False, rsv=4)
        ws.send_frame(CONT, data[5:], rsv=4)
        expect_close(ws, 1002)


def test_rfc7692_rsv1_on_a_control_frame_is_1002(server: Server) -> None:
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(PING, deflate(b"ping"), rsv=4)
        expect_close(ws, 1002)


def test_rfc7692_corrupt_deflate_data_is_refused(server: Server) -> None:
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(BINARY, b"\xff\xff\xff\xff not deflate", rsv=4)
        assert ws.read_close().close_code in (1002, 1007)


def test_rfc7692_invalid_utf8_inside_a_compressed_text_is_1007(server: Server) -> None:
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(TEXT, deflate(b"bad \xc3\x28"), rsv=4)
        expect_close(ws, 1007)


def test_rfc7692_compressed_fragments_over_the_limit_are_1009(server: Server) -> None:
    """WS_MAX_MESSAGE_BYTES bounds the inflated message across its fragments."""
    chunk = bytes(256 * 1024)
    comp = zlib.compressobj(wbits=-15)
    with server.open(extra=DEFLATE) as ws:
        for i in range(6):  # 1.5 MiB inflated over 6 small frames
            data = comp.compress(chunk) + comp.flush(zlib.Z_SYNC_FLUSH)
            if i == 5:
                data = data[:-4]
            ws.send_frame(BINARY if i == 0 else CONT, data, fin=i == 5, rsv=4 if i == 0 else 0)
        expect_close(ws, 1009)


def test_rfc7692_a_message_of_exactly_the_limit_passes(server: Server) -> None:
    payload = os.urandom(1024 * 1024)  # incompressible: longer than the limit once deflated
    data = deflate(payload)
    assert len(data) > len(payload)
    with server.open(extra=DEFLATE) as ws:
        ws.send_frame(BINARY, data, rsv=4)
        assert Inflater().message(ws) == (BINARY, payload)


def test_5_4_uncompressed_fragments_over_the_limit_are_1009(server: Server) -> None:
    with server.open() as ws:
        for i in range(5):  # 1.25 MiB in five frames of 256 KiB
            ws.send_frame(BINARY if i == 0 else CONT, bytes(256 * 1024), fin=i == 4)
        expect_close(ws, 1009)


def test_5_4_one_uncompressed_frame_over_the_limit_is_1009(server: Server) -> None:
    with server.open() as ws:
        ws.send_frame(BINARY, bytes(1024 * 1024 + 1))
        expect_close(ws, 1009)
