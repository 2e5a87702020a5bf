"""Cases 1-7 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close).

Each entry says what Autobahn|Testsuite's case class of the same id sends
and expects (autobahntestsuite/case/caseN_M.py); ``c`` is the running
``Case`` (``c.p`` its connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .case import (
    NON_STRICT,
    NORMAL,
    OK,
    PROTOCOL_ERROR,
    Case,
    by_me,
    by_server,
)
from .utf8 import VALID_TEXT

CASES: list[type[Case]] = []
HELLO = b"Hello, world!"
TEXT = "Hello-µ@ßöäüàá-UTF-8!!".encode()
BAD = VALID_TEXT + b"\xed\xa0\x80" + b"edited"  # invalid at byte 12 (6.3)
BAD4 = VALID_TEXT + b"\xf4\x90\x80\x80" + b"edited"  # invalid at byte 12 (6.4)


Start = Callable[..., None]


def case(ident: str, base: type[Case] = Case) -> Callable[[Start], Start]:
    """Register ``start`` (what the case sends, and expects) as case ``ident``."""
    def register(start: Start) -> Start:
        CASES.append(type("Case" + ident.replace(".", "_"), (base,),
                          {"id": ident, "start": start}))
        return start
    return register


def echo(ident: str, opcode: int, payload: bytes, chopsize: int | None = None,
         kill: float = 1) -> None:
    def start(c: Case) -> None:
        c.expected[OK] = [("message", payload, opcode == 2)]
        c.expected_close = by_me()
        c.p.send_frame(opcode, payload, chopsize=chopsize)
        c.kill_after(kill)
    case(ident)(start)


def fails(ident: str, frames: list[dict[str, Any]], echoed: bytes | None = None,
          code: int = PROTOCOL_ERROR) -> None:
    """The server must fail the connection; ``echoed``: a valid message before (NON-STRICT:
    failing before its echo)."""
    def start(c: Case) -> None:
        c.expected[OK] = [("message", echoed, False)] if echoed is not None else []
        if echoed is not None:
            c.expected[NON_STRICT] = []
        c.expected_close = by_server(code)
        for frame in frames:
            c.p.send_frame(**frame)
        c.kill_after(1)
    case(ident)(start)


# 1: framing ---------------------------------------------------------------------------
for i, (n, kill, chop) in enumerate([(0, 1, None), (125, 1, None), (126, 1, None),
                                     (127, 1, None), (128, 1, None), (65535, 10, None),
                                     (65536, 10, None), (65536, 10, 997)], 1):
    echo(f"1.1.{i}", 1, b"*" * n, chop, kill)
    echo(f"1.2.{i}", 2, b"\xfe" * n, chop, kill)


# 2: pings/pongs --------------------------------------------------------------------------
def pong(ident: str, payload: bytes, chopsize: int | None = None, wait: float = 1) -> None:
    def start(c: Case) -> None:
        c.expected[OK] = [("pong", payload)]
        c.p.send_frame(9, payload, chopsize=chopsize)
        c.close_after(wait)
    case(ident)(start)


pong("2.1", b"")
pong("2.2", HELLO)
pong("2.3", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")
pong("2.4", b"\xfe" * 125)
fails("2.5", [{"opcode": 9, "payload": b"\xfe" * 126}])
pong("2.6", b"\xfe" * 125, chopsize=1, wait=2)


@case("2.7")
def _unsolicited_pong(c: Case, payload: bytes = b"") -> None:
    c.expected[OK] = []
    c.p.send_frame(10, payload)
    c.p.send_close(NORMAL)
    c.close_after(1)


@case("2.8")
def _unsolicited_pong_payload(c: Case) -> None:
    _unsolicited_pong(c, b"unsolicited pong payload")


@case("2.9")
def _pong_then_ping(c: Case) -> None:
    c.expected[OK] = [("pong", b"ping payload")]
    c.p.send_frame(10, b"unsolicited pong payload")
    c.p.send_frame(9, b"ping payload")
    c.close_after(1)


def ten_pings(ident: str, chopsize: int | None) -> None:
    def start(c: Case) -> None:
        c.expected[OK] = []
        for i in range(10):
            payload = f"payload-{i}".encode()
            c.expected[OK].append(("pong", payload))
            c.p.send_frame(9, payload, chopsize=chopsize)
        c.close_after(3)
    case(ident)(start)


ten_pings("2.10", None)
ten_pings("2.11", 1)

# 3: reserved bits ---------------------------------------------------------------------------
fails("3.1", [{"opcode": 1, "payload": HELLO, "rsv": 1}])
fails("3.2", [{"opcode": 1, "payload": HELLO}, {"opcode": 1, "payload": HELLO, "rsv": 2},
              {"opcode": 9}], echoed=HELLO)
fails("3.3", [{"opcode": 1, "payload": HELLO, "sync": True},
              {"opcode": 1, "payload": HELLO, "rsv": 3, "sync": True},
              {"opcode": 9, "sync": True}], echoed=HELLO)
fails("3.4", [{"opcode": 1, "payload": HELLO, "chopsize": 1},
              {"opcode": 1, "payload": HELLO, "rsv": 4, "chopsize": 1},
              {"opcode": 9, "chopsize": 1}], echoed=HELLO)
fails("3.5", [{"opcode": 2, "payload": b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", "rsv": 5}])
fails("3.6", [{"opcode": 2, "payload": HELLO, "rsv": 6}])
fails("3.7", [{"opcode": 8, "rsv": 7}])

# 4: opcodes ---------------------------------------------------------------------------------------
for base, (a, b, c_, d, e) in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
    fails(f"4.{base}.1", [{"opcode": a}])
    fails(f"4.{base}.2", [{"opcode": b, "payload": b"reserved opcode payload"}])
    fails(f"4.{base}.3", [{"opcode": 1, "payload": HELLO}, {"opcode": c_}, {"opcode": 9}],
          echoed=HELLO)
    fails(f"4.{base}.4", [{"opcode": 1, "payload": HELLO}, {"opcode": d, "payload": HELLO},
                          {"opcode": 9}], echoed=HELLO)
    fails(f"4.{base}.5", [{"opcode": 1, "payload": HELLO, "chopsize": 1},
                          {"opcode": e, "payload": HELLO, "chopsize": 1},
                          {"opcode": 9, "chopsize": 1}], echoed=HELLO)


# 5: fragmentation ------------------------------------------------------------------------------
def frag(opcode: int, fin: bool, payload: bytes, **how: Any) -> dict[str, Any]:
    return {"opcode": opcode, "fin": fin, "payload": payload, **how}


fails("5.1", [frag(9, False, b"fragment1"), frag(0, True, b"fragment2")])
fails("5.2", [frag(10, False, b"fragment1"), frag(0, True, b"fragment2")])
for ident, how in (("5.3", {}), ("5.4", {"sync": True}), ("5.5", {"chopsize": 1})):
    def _two_fragments(c: Case, how: dict[str, Any] = how) -> None:
        c.expected[OK] = [("message", b"fragment1fragment2", False)]
        c.p.send_frame(**frag(1, False, b"fragment1", **how))
        c.p.send_frame(**frag(0, True, b"fragment2", **how))
        c.close_after(1)
    case(ident)(_two_fragments)
for ident, how in (("5.6", {}), ("5.7", {"sync": True}), ("5.8", {"chopsize": 1})):
    def _ping_between(c: Case, how: dict[str, Any] = how) -> None:
        c.expected[OK] = [("pong", b"ping payload"), ("message", b"fragment1fragment2", False)]
        c.p.send_frame(**frag(1, False, b"fragment1", **how))
        c.p.send_frame(**frag(9, True, b"ping payload", **how))
        c.p.send_frame(**frag(0, True, b"fragment2", **how))
        c.close_after(1)
    case(ident)(_ping_between)
WAYS: list[dict[str, Any]] = [{}, {"sync": True}, {"chopsize": 1}]
for n, (fin, how) in enumerate([(True, WAYS[0]), (True, WAYS[1]), (True, WAYS[2]),
                                (False, WAYS[0]), (False, WAYS[1]),
                                (False, WAYS[2])], 9):
    fails(f"5.{n}", [frag(0, fin, b"non-continuation payload", **how),
                     frag(1, True, HELLO, **how)])


@case("5.15")
def _continued_after_end(c: Case) -> None:
    c.expected[OK] = [("message", b"fragment1fragment2", False)]
    c.expected[NON_STRICT] = []
    c.expected_close = by_server(PROTOCOL_ERROR)
    for frame in (frag(1, False, b"fragment1"), frag(0, True, b"fragment2"),
                  frag(0, False, b"fragment3"), frag(1, True, b"fragment4")):
        c.p.send_frame(**frame)
    c.kill_after(1)


fails("5.16", [frag(0, False, b"fragment1"), frag(1, False, b"fragment2"),
               frag(0, True, b"fragment3")] * 2)
fails("5.17", [frag(0, True, b"fragment1"), frag(1, False, b"fragment2"),
               frag(0, True, b"fragment3")] * 2)
fails("5.18", [frag(1, False, b"fragment1"), frag(1, True, b"fragment2")])

for ident, sync in (("5.19", False), ("5.20", True)):
    def _pings_over_time(c: Case, sync: bool = sync) -> None:
        parts = [b"fragment1", b"fragment2", b"fragment3", b"fragment4", b"fragment5"]
        c.expected[OK] = [("pong", b"pongme 1!"), ("pong", b"pongme 2!"),
                          ("message", b"".join(parts), False)]
        c.p.send_frame(1, parts[0], fin=False, sync=sync)
        c.p.send_frame(0, parts[1], fin=False, sync=sync)
        c.p.send_frame(9, b"pongme 1!", sync=sync)

        def part2() -> None:
            c.p.send_frame(0, parts[2], fin=False, sync=sync)
            c.p.send_frame(0, parts[3], fin=False, sync=sync)
            c.p.send_frame(9, b"pongme 2!", sync=sync)
            c.p.send_frame(0, parts[4], sync=sync)
            c.close_after(1)
        c.later(part2)
    case(ident)(_pings_over_time)
