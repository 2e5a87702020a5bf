"""Errors of the HTTP layer: each one carries the status a client should get."""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; answer ``status`` with ``reason`` and close.

    ``reason`` is sent to the client as the body of the error response, so it
    must say what was wrong without echoing attacker-controlled bytes.

    ``events`` holds what the same ``feed()`` call completed before the bad
    bytes (e.g. a whole pipelined request that came first): the caller serves
    those, then answers the error, so a good request is never lost to a bad
    one that arrived in the same read.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.events: list[Any] = []


class LocalProtocolError(Exception):
    """The application asked for a response HTTP/1.1 cannot express."""
