"""WebSocket messages from fragments: the size limit counts what a fragment costs.

``MessageAssembler`` (qactuar/websocket/messages.py) is sans-I/O: frames in,
``websocket.receive`` messages out, so most of this drives it with frames
alone. A fragment counts its payload plus ``FRAGMENT_OVERHEAD`` (the
smallest client frame header), so a million 1-byte fragments or an endless
run of empty ones meet ``WS_MAX_MESSAGE_BYTES`` as their wire bytes would,
and the fragments are gathered in one buffer rather than one object each.
"""

from __future__ import annotations

import os
import tracemalloc

import pytest
from apps.ws import app as ws_app
from hypothesis import given, settings
from hypothesis import strategies as st
from support import serve_qactuar
from websockets.frames import Frame, Opcode
from wsraw import BINARY, CONT, TEXT, RawWebSocket

from qactuar.websocket.messages import FRAGMENT_OVERHEAD, MessageAssembler, MessageRefused

MIB = 1024 * 1024


def fragments(opcode: Opcode, parts: list[bytes]) -> list[Frame]:
    """``parts`` as one fragmented message: a first frame, continuations, a final one."""
    frames = [Frame(opcode, parts[0], fin=len(parts) == 1)]
    frames += [Frame(Opcode.CONT, part, fin=False) for part in parts[1:-1]]
    if len(parts) > 1:
        frames.append(Frame(Opcode.CONT, parts[-1], fin=True))
    return frames


def feed(assembler: MessageAssembler, frames: list[Frame]) -> dict[str, object] | None:
    message = None
    for frame in frames:
        message = assembler.add(frame)
    return message


def test_a_million_one_byte_fragments_under_the_limit_are_refused_as_their_wire_bytes():
    # 1 MiB of payload in 1-byte fragments is 7 MiB on the wire: 1009 long
    # before the millionth fragment
    assembler = MessageAssembler(MIB)
    assembler.add(Frame(Opcode.BINARY, b"x", fin=False))
    added = 1
    with pytest.raises(MessageRefused) as refused:
        for _ in range(MIB):
            assembler.add(Frame(Opcode.CONT, b"x", fin=False))
            added += 1
    assert refused.value.code == 1009
    assert added == (MIB + FRAGMENT_OVERHEAD) // (1 + FRAGMENT_OVERHEAD)


def test_an_endless_run_of_empty_continuations_is_refused():
    assembler = MessageAssembler(64 * 1024)
    assembler.add(Frame(Opcode.TEXT, b"", fin=False))
    with pytest.raises(MessageRefused) as refused:
        for _ in range(100_000):
            assembler.add(Frame(Opcode.CONT, b"", fin=False))
    assert refused.value.code == 1009


def test_many_small_fragments_hold_about_their_payload_in_memory():
    # 200,000 one-byte fragments under a large limit: the assembler holds one
    # buffer of their bytes, not an object per fragment (was: a list of
    # 200,000 bytes objects, ~40 times the payload)
    assembler = MessageAssembler(16 * MIB)
    frames = fragments(Opcode.BINARY, [b"y"] * 200_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame in frames[:-1]:
            assembler.add(frame)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1 * MIB, f"{held} bytes held for 200,000 bytes of payload"
    message = assembler.add(frames[-1])
    assert message == {"type": "websocket.receive", "bytes": b"y" * 200_000}


def test_a_message_in_one_frame_may_be_as_large_as_the_limit():
    assembler = MessageAssembler(1000)
    assert feed(assembler, [Frame(Opcode.BINARY, b"z" * 1000)]) == {
        "type": "websocket.receive", "bytes": b"z" * 1000}
    with pytest.raises(MessageRefused):
        assembler.add(Frame(Opcode.BINARY, b"z" * 1001))


def test_fragments_within_the_limit_with_their_overhead_make_one_message():
    text = "κόσμε €𝄞 " * 20
    data = text.encode()
    # cut inside code points: each piece is checked, the whole decoded once
    parts = [data[i:i + 5] for i in range(0, len(data), 5)]
    limit = len(data) + FRAGMENT_OVERHEAD * (len(parts) - 1)
    assert feed(MessageAssembler(limit), fragments(Opcode.TEXT, parts)) == {
        "type": "websocket.receive", "text": text}
    with pytest.raises(MessageRefused):
        feed(MessageAssembler(limit - 1), fragments(Opcode.TEXT, parts))


def test_invalid_utf8_still_fails_on_its_fragment():
    assembler = MessageAssembler(MIB)
    assembler.add(Frame(Opcode.TEXT, b"ok", fin=False))
    with pytest.raises(MessageRefused) as refused:
        assembler.add(Frame(Opcode.CONT, b"\xff", fin=False))
    assert refused.value.code == 1007
    # the next message starts afresh
    assert assembler.add(Frame(Opcode.TEXT, b"fine")) == {
        "type": "websocket.receive", "text": "fine"}


def test_a_server_closes_a_flood_of_empty_continuations_with_1009():
    with serve_qactuar(ws_app, WS_PING_INTERVAL=0, ACCESS_LOG=False,
                       WS_MAX_MESSAGE_BYTES=1024) as running:
        with RawWebSocket.open(running.port) as ws:
            ws.send_frame(BINARY, os.urandom(10), fin=False)
            for _ in range(1024 // FRAGMENT_OVERHEAD + 1):
                ws.send_frame(CONT, b"", fin=False)
            assert ws.read_close().close_code == 1009
        with RawWebSocket.open(running.port) as ws:  # others are served on
            ws.send_frame(TEXT, b"hello")
            assert ws.read_message().payload == b"hello"


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.tuples(st.text(max_size=200).map(str.encode), st.just(True)),
                 st.tuples(st.binary(max_size=200), st.just(False))),
       st.lists(st.integers(0, 800), max_size=20))
def test_any_fragmentation_gives_the_same_message(message: tuple[bytes, bool],
                                                 cuts: list[int]) -> None:
    """Property (hypothesis): however a message is cut into fragments, empty ones
    included, the app receives the same message."""
    payload, text = message
    edges = [0, *sorted(c for c in cuts if c <= len(payload)), len(payload)]
    parts = [payload[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    opcode = Opcode.TEXT if text else Opcode.BINARY
    expected = ({"type": "websocket.receive", "text": payload.decode()} if text
                else {"type": "websocket.receive", "bytes": payload})
    assembler = MessageAssembler(MIB)
    assert feed(assembler, fragments(opcode, parts)) == expected
