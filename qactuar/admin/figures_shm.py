"""Figures through shared memory: a prefork worker's.

A ``FiguresBlock`` is a region of an anonymous shared mapping made before
the fork. One process writes into it, another reads; neither takes a lock
nor makes a system call. A prefork worker publishes its whole ``Totals``
at most once per heartbeat (about once a second) and as it exits
(``publish``; the master ``read``s them). There the hot path never touches
a block: it counts in the process's own ``Recorder``.

The block is a sequence lock: a count that is odd while a write is under
way, the payload's length, the payload (``marshal`` of plain tuples, lists
and dicts). A reader copies the payload and keeps it only if the count was even
and unchanged around the copy, so it never decodes half of a write.
"""

from __future__ import annotations

import logging
import marshal
import mmap
import struct
from typing import Any

from .figures import RouteTotals, Totals

__all__ = ["FiguresBlock", "decode", "encode"]

logger = logging.getLogger("qt_server")

_SEQ = struct.Struct("=Q")
_LENGTH = struct.Struct("=I")
#: sequence count (8 bytes), payload length (4), padding: the payload starts here
_PAYLOAD_AT = 16
#: How often a read retries while a write is under way (a write takes microseconds).
_READ_TRIES = 1000


def encode(totals: Totals) -> bytes:
    """``totals`` as bytes (``marshal`` of plain values)."""
    routes = {
        name: (route.requests, route.latency_sum, route.buckets)
        for name, route in totals.routes.items()
    }
    return marshal.dumps(
        (
            totals.in_flight,
            totals.http_connections,
            totals.websocket_connections,
            totals.bytes_in,
            totals.bytes_out,
            routes,
        )
    )


def decode(data: bytes) -> Totals:
    """What ``encode`` made; ValueError if ``data`` is not that."""
    try:
        value: Any = marshal.loads(data)
        in_flight, http, websockets, bytes_in, bytes_out, routes = value
        totals = Totals(int(in_flight), int(http), int(websockets), int(bytes_in), int(bytes_out))
        for name, (requests, latency_sum, buckets) in routes.items():
            route = RouteTotals(dict(requests), float(latency_sum), list(buckets))
            totals.routes[str(name)] = route
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable figures: {exc}") from None
    return totals


class FiguresBlock:
    """``size`` bytes at ``offset`` of ``mem``, written by one process and read by another."""

    __slots__ = ("mem", "offset", "size", "_warned")

    def __init__(self, mem: mmap.mmap, offset: int, size: int) -> None:
        self.mem = mem
        self.offset = offset
        self.size = size
        self._warned = False

    def write(self, data: bytes) -> bool:
        """Publish ``data`` (the writer's whole figures so far); False if it does not fit."""
        if len(data) > self.size - _PAYLOAD_AT:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "Admin figures of %d bytes do not fit their %d-byte block (too many "
                    "routes): the admin socket shows this process's figures as last published",
                    len(data),
                    self.size,
                )
            return False
        mem, at = self.mem, self.offset
        seq = _SEQ.unpack_from(mem, at)[0] | 1  # odd: a write is under way
        _SEQ.pack_into(mem, at, seq)
        start = at + _PAYLOAD_AT
        mem[start : start + len(data)] = data
        _LENGTH.pack_into(mem, at + 8, len(data))
        _SEQ.pack_into(mem, at, seq + 1)  # even again, and changed
        return True

    def read_bytes(self) -> bytes:
        """What was last published whole; b"" if nothing was (or a write never ends)."""
        mem, at = self.mem, self.offset
        for _ in range(_READ_TRIES):
            before = _SEQ.unpack_from(mem, at)[0]
            if before & 1:
                continue
            length = min(_LENGTH.unpack_from(mem, at + 8)[0], self.size - _PAYLOAD_AT)
            start = at + _PAYLOAD_AT
            data = mem[start : start + length]
            if _SEQ.unpack_from(mem, at)[0] == before:
                return data
        return b""

    def publish(self, totals: Totals) -> bool:
        """Publish ``totals`` (a prefork worker's); False if they do not fit."""
        return self.write(encode(totals))

    def read(self) -> Totals | None:
        """The ``Totals`` last published whole; None if none were (or unreadable)."""
        data = self.read_bytes()
        if not data:
            return None
        try:
            return decode(data)
        except ValueError as exc:
            logger.error("%s", exc)
            return None
