"""Cases 6 (UTF-8 handling) and 7 (close handling), after Autobahn's case6_*/case7_*."""

from __future__ import annotations

from collections.abc import Callable

from .basic import BAD, BAD4, CASES, TEXT, Start, case
from .case import (
    INVALID_PAYLOAD,
    NON_STRICT,
    NORMAL,
    OK,
    PROTOCOL_ERROR,
    Case,
    CloseCase,
    InformationalCase,
    by_me,
    by_server,
)
from .utf8 import VALID_TEXT, sequences
from .wire import OPEN


def send_message(c: Case, payload: bytes, fragment_size: int = 0) -> None:
    """autobahn's ``sendMessage`` of a text message (no deflate in chapters 1-10)."""
    c.p.send_message(payload, binary=False, fragment_size=fragment_size)


def valid_text(ident: str, payload: bytes, fragment_size: int = 0) -> None:
    def start(c: Case) -> None:
        c.expected[OK] = [("message", payload, False)]
        send_message(c, payload, fragment_size)
        c.close_after(1)
    case(ident)(start)


def invalid_text(ident: str, payload: bytes, fragment_size: int = 0, kill: float = 1) -> None:
    def start(c: Case) -> None:
        c.expected[OK] = []
        c.expected_close = by_server(INVALID_PAYLOAD, fatal=True)
        send_message(c, payload, fragment_size)
        c.kill_after(kill)
    case(ident)(start)


# 6.1: empty fragments ------------------------------------------------------------------------
valid_text("6.1.1", b"")


@case("6.1.2")
def _empty_fragments(c: Case, middle: bytes = b"") -> None:
    c.expected[OK] = [("message", middle, False)]
    c.p.send_frame(1, b"", fin=False)
    c.p.send_frame(0, middle, fin=False)
    c.p.send_frame(0, b"")
    c.close_after(1)


@case("6.1.3")
def _empty_around_middle(c: Case) -> None:
    _empty_fragments(c, b"middle frame payload")


# 6.2: valid UTF-8, whole, split on and within code points -------------------------------------
valid_text("6.2.1", TEXT)


@case("6.2.2")
def _split_text(c: Case) -> None:
    first, second = "Hello-µ@ßöä".encode(), "üàá-UTF-8!!".encode()
    c.expected[OK] = [("message", first + second, False)]
    c.p.send_frame(1, first, fin=False)
    c.p.send_frame(0, second)
    c.close_after(1)


valid_text("6.2.3", TEXT, fragment_size=1)
valid_text("6.2.4", VALID_TEXT, fragment_size=1)

# 6.3: invalid UTF-8, whole and in 1-byte fragments --------------------------------------------
invalid_text("6.3.1", BAD)
invalid_text("6.3.2", BAD, fragment_size=1)


# 6.4: fail fast: the invalid byte arrives, then a pause; the rest must never be needed ---------
def fail_fast(ident: str, parts: tuple[bytes, bytes, bytes], one_frame: bool) -> None:
    """``one_frame``: one frame whose payload trickles in, then an empty final frame
    (6.4.3/4: autobahn's ``beginMessageFrame``/``endMessage``), else three frames.

    Autobahn waits 1 s after each part; here the wait after the valid part
    is ``pause`` (the server must stay quiet), the wait after the invalid
    part ends when the server closes (at most 1 s times ``slack``).
    """

    def start(c: Case) -> None:
        c.expected[OK] = [("timeout", "A")]
        c.expected[NON_STRICT] = [("timeout", "A"), ("timeout", "B")]
        c.expected_close = by_server(INVALID_PAYLOAD, fatal=True)

        def send(i: int) -> None:
            if one_frame:
                c.p.frame_data(parts[i])
                if i == 2:
                    c.p.send_frame(0, b"")
            else:
                c.p.send_frame(1 if i == 0 else 0, parts[i], fin=(i == 2))

        def part(i: int) -> None:
            if c.p.state != OPEN:
                return
            c.received.append(("timeout", "AB"[i - 1]))
            send(i)
            if i == 1:
                c.p.later(c.timing.slack, lambda: part(2))
            else:
                c.kill_after(1)

        if one_frame:
            c.p.begin_frame(1, sum(map(len, parts)))
        send(0)
        c.later(lambda: part(1))

    case(ident)(start)


fail_fast("6.4.1", (VALID_TEXT, b"\xf4\x90\x80\x80", b"edited"), one_frame=False)
fail_fast("6.4.2", (BAD4[:12], BAD4[12:13], BAD4[13:]), one_frame=False)
fail_fast("6.4.3", (VALID_TEXT, b"\xf4\x90\x80\x80", b"edited"), one_frame=True)
fail_fast("6.4.4", (BAD4[:12], BAD4[12:13], BAD4[13:]), one_frame=True)

# 6.5-6.23: the UTF-8 decoder test sequences, each as one text message --------------------------
for group, (_title, items) in enumerate(sequences(), 5):
    for n, (valid, payload) in enumerate(items, 1):
        (valid_text if valid else invalid_text)(f"6.{group}.{n}", payload)

# 7: close handling --------------------------------------------------------------------------------


def closing(ident: str, base: type[Case] = CloseCase) -> Callable[[Start], Start]:
    return case(ident, base)


@closing("7.1.1")
def _echo_then_close(c: Case) -> None:
    c.expected[OK] = [("message", b"Hello World!", False)]
    c.p.send_frame(1, b"Hello World!")
    c.kill_after(1)


def after_close(ident: str, frame: dict[str, object]) -> None:
    def start(c: Case) -> None:
        c.suppress_close = True
        c.expected[OK] = []
        c.p.send_close(NORMAL)
        c.p.send_frame(**frame)  # type: ignore[arg-type]
        c.kill_after(1)
    case(ident, CloseCase)(start)


after_close("7.1.2", {"opcode": 8})
after_close("7.1.3", {"opcode": 9})
after_close("7.1.4", {"opcode": 1, "payload": b"Hello World!"})


@closing("7.1.5")
def _close_between_fragments(c: Case) -> None:
    c.suppress_close = True
    c.expected[OK] = []
    c.p.send_frame(1, b"fragment1", fin=False)
    c.p.send_close(NORMAL)
    c.p.send_frame(0, b"fragment2")
    c.kill_after(1)


@closing("7.1.6", InformationalCase)
def _close_behind_big_message(c: Case) -> None:
    c.suppress_close = True
    c.expected[OK] = [("message", b"Hello World!", False)]
    c.expected[NON_STRICT] = []
    c.p.send_frame(1, b"BAsd7&jh23", payload_len=256 * 1024)
    c.p.send_frame(1, b"Hello World!")
    c.p.send_close(NORMAL)
    c.p.send_frame(9)
    c.kill_after(1)


def close_frame(ident: str, code: int | None, reason: bytes | None, expect: tuple[int, ...],
                clean: bool, base: type[Case] = CloseCase) -> None:
    """Our close frame, as is (``sendCloseFrame``): the server must answer with ``expect``."""
    def start(c: Case) -> None:
        c.suppress_close = True
        c.expected[OK] = []
        c.expected_close = by_me(*expect, clean=clean)
        c.p.send_close_frame(code, reason)
        c.kill_after(1)
    case(ident, base)(start)


close_frame("7.3.1", None, None, (NORMAL,), True)
close_frame("7.3.2", None, b"a", (PROTOCOL_ERROR,), False)
close_frame("7.3.3", NORMAL, None, (NORMAL,), True)
close_frame("7.3.4", NORMAL, b"Hello World!", (NORMAL,), True)
close_frame("7.3.5", NORMAL, b"*" * 123, (NORMAL,), True)
close_frame("7.3.6", NORMAL, b"*" * 124, (PROTOCOL_ERROR,), False)
close_frame("7.5.1", NORMAL, BAD + b"", (PROTOCOL_ERROR, INVALID_PAYLOAD), False)
for n, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999,
                          4000, 4999], 1):
    close_frame(f"7.7.{n}", code, None, (NORMAL, code), True)
for n, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], 1):
    close_frame(f"7.9.{n}", code, None, (PROTOCOL_ERROR,), False)
for n, code in enumerate([5000, 65535], 1):
    close_frame(f"7.13.{n}", code, None, (NORMAL, code, PROTOCOL_ERROR), False,
                InformationalCase)

__all__ = ["CASES"]
