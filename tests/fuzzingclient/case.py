"""A case and its verdict, as Autobahn|Testsuite's ``case/case.py`` decides it.

A case records what the server sent (``("message", payload, binary)``,
``("pong", payload)``, ``("ping", payload)``, and the case's own
``("timeout", name)`` marks), compares it with each expected outcome
(``expected[OK]``, ``expected[NON_STRICT]``...) and the close with
``expected_close``: who must close first, the close codes allowed (or none),
whether the close must be clean. Autobahn reports two results per case:
``behavior`` (the events) and ``behavior_close``; ``verdict`` folds them into
one, FAILED when either is a failure Autobahn shows in red (behaviour FAILED,
close FAILED or UNCLEAN), so it is a little stricter than Autobahn's
behaviour column alone.

``Timing`` scales the case's own delays: ``pause`` for the waits in which
the server is expected to do nothing (Autobahn's 1 s), ``slack`` for the
limits that end early on an event (kill/close timers; Autobahn's values
times ``slack``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .wire import Session

OK = "OK"
NON_STRICT = "NON-STRICT"
INFORMATIONAL = "INFORMATIONAL"
UNIMPLEMENTED = "UNIMPLEMENTED"
FAILED = "FAILED"
WRONG_CODE = "WRONG CODE"
UNCLEAN = "UNCLEAN"
FAILED_BY_CLIENT = "FAILED BY CLIENT"

NORMAL, PROTOCOL_ERROR, INVALID_PAYLOAD = 1000, 1002, 1007


@dataclass(frozen=True)
class Timing:
    pause: float = 1.0  # Autobahn's continueLater delays
    slack: float = 1.0  # multiplies every limit (they end early on events): killAfter,
    # closeAfter, the opening (5 s) and closing (1 s, 1 s) handshake timeouts


def by_me(*codes: int, clean: bool = True) -> dict[str, Any]:
    return {"closedByMe": True, "closeCode": list(codes or (NORMAL,)), "requireClean": clean}


def by_server(code: int, fatal: bool = False) -> dict[str, Any]:
    close: dict[str, Any] = {"closedByMe": False, "closeCode": [code], "requireClean": False}
    if fatal:
        close["closedByWrongEndpointIsFatal"] = True
    return close


class Case:
    """One case: ``start`` sends, the events are recorded, ``finish`` decides."""

    id = ""
    offers: list[str] = []
    limit = 30.0  # seconds: the whole case, a bound against a hung server
    path = "/echo"

    def __init__(self, p: Session, timing: Timing) -> None:
        self.p = p
        self.timing = timing
        self.received: list[tuple[Any, ...]] = []
        self.expected: dict[str, list[tuple[Any, ...]]] = {}
        self.expected_close: dict[str, Any] = by_me()
        self.behavior = FAILED
        self.behavior_close = FAILED
        self.result = "Actual events differ from any expected."
        self.result_close = "TCP connection was dropped without close handshake"
        self.suppress_close = False

    # Autobahn's protocol timers, scaled
    def kill_after(self, delay: float) -> None:
        self.p.kill_after(delay * self.timing.slack)

    def close_after(self, delay: float) -> None:
        self.p.close_after(delay * self.timing.slack)

    def later(self, fn: Any) -> None:
        self.p.later(self.timing.pause, fn)

    def on_open(self) -> None:
        self.start()

    def start(self) -> None:
        raise NotImplementedError

    def on_message(self, payload: bytes, binary: bool) -> None:
        self.received.append(("message", payload, binary))
        self.finish_when_done()

    def on_ping(self, payload: bytes) -> None:
        self.received.append(("ping", payload))
        self.finish_when_done()

    def on_pong(self, payload: bytes) -> None:
        self.received.append(("pong", payload))
        self.finish_when_done()

    def finish_when_done(self) -> None:
        """Every expected outcome matched: close (unless the case sends its own close)."""
        if any(self.received != events for events in self.expected.values()):
            return
        if self.expected_close["closedByMe"] and not self.suppress_close:
            self.p.send_close(self.expected_close["closeCode"][0])

    def on_lost(self) -> None:
        for behavior, events in self.expected.items():
            if self.received == events:
                self.behavior = behavior
                self.result = "Actual events match at least one expected."
                break
        p, close = self.p, self.expected_close
        if not p.connection_was_open:
            self.behavior_close = FAILED
            self.result_close = "The WebSocket opening handshake was never completed!"
            return
        if close["closedByMe"] != p.closed_by_me:
            self.behavior_close = FAILED
            self.result_close = "The connection was failed by the wrong endpoint"
        elif close["requireClean"] and not p.was_clean:
            self.behavior_close = UNCLEAN
            self.result_close = "The spec requires the connection to be failed cleanly here"
        elif p.remote_close_code is not None and p.remote_close_code not in close["closeCode"]:
            self.behavior_close = WRONG_CODE
            self.result_close = f"The close code should have been {close['closeCode']} or empty"
        elif p.dropped_by_me:
            self.behavior_close = FAILED_BY_CLIENT
            self.result_close = "It is preferred that the server close the TCP connection"
        else:
            self.behavior_close = OK
            self.result_close = "Connection was properly closed"
        if close.get("closedByWrongEndpointIsFatal") and close["closedByMe"] != p.closed_by_me:
            self.behavior = FAILED

    def verdict(self) -> str:
        if self.p.violation is not None:
            return FAILED
        if self.behavior == FAILED or self.behavior_close in (FAILED, UNCLEAN):
            return FAILED
        return self.behavior


class CloseCase(Case):
    """Chapter 7's rule: a wrong close code fails the case itself."""

    def on_lost(self) -> None:
        super().on_lost()
        if self.behavior_close == WRONG_CODE:
            self.behavior = FAILED
            self.result = self.result_close


class InformationalCase(Case):
    """Cases whose outcome the spec leaves open (7.1.6, 7.13.x)."""

    def on_lost(self) -> None:
        super().on_lost()
        self.behavior = self.behavior_close = INFORMATIONAL
        self.result = "Actual events are undefined by the spec."

    def verdict(self) -> str:
        return INFORMATIONAL
