"""Figures through shared memory: a prefork worker's, a fork child's.

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

A fork child is different: every page of its parent's memory it writes is
copied, so it keeps no counts of its own (clearing and publishing the
parent's ``Recorder`` touched a dozen pages per child). Its ``ChildTally``
writes each request it answers straight into its slot's block, a
``ChildBlock``: a fixed record per (route, method, status class, latency
bucket), a request like the last one added to its record. The parent reads
the block only once the child is reaped (no one writes it then), folds it
into its own recorder (``ChildBlock.fold_into``) and empties it for the
slot's next child.
"""

from __future__ import annotations

import logging
import marshal
import mmap
import struct
from bisect import bisect_left
from typing import Any

from .figures import LATENCY_BUCKETS, METHODS, STATUS_CLASSES, Recorder, RouteTotals, Totals

__all__ = ["ChildBlock", "ChildTally", "FiguresBlock", "decode", "encode"]

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


# -- a fork child's tally ----------------------------------------------------------------------

#: A child block's head: records written, requests that found no room.
_TALLY_HEAD = struct.Struct("=II")
#: One record: route index (``_NO_ROUTE``: UNROUTED), method index, status
#: class index, latency bucket, requests, their latency sum, bytes in and out.
_RECORD = struct.Struct("=HBBBxIdQQ")
_RECORDS_AT = 16
_NO_ROUTE = 0xFFFF
_METHOD_INDEX = {name: i for i, name in enumerate(METHODS)}
_OTHER = _METHOD_INDEX["OTHER"]
_LAST_CLASS = len(STATUS_CLASSES) - 1
#: A parent warns once that a child's block was full (see ``ChildBlock.fold_into``).
_warned_full: list[bool] = []


class ChildBlock:
    """A fork slot's block of ``size`` bytes at ``offset`` of ``mem``: what its
    child answered, as records (written by the child, read by the parent once
    the child is gone)."""

    __slots__ = ("mem", "offset", "capacity")

    def __init__(self, mem: mmap.mmap, offset: int, size: int) -> None:
        self.mem = mem
        self.offset = offset
        #: records that fit
        self.capacity = (size - _RECORDS_AT) // _RECORD.size

    def fold_into(self, recorder: Recorder) -> int:
        """Add what the child wrote here to ``recorder``, then empty the block;
        returns the number of requests it held."""
        mem, at = self.mem, self.offset
        written, lost = _TALLY_HEAD.unpack_from(mem, at)
        if not written and not lost:
            return 0
        total = int(lost)
        for i in range(min(written, self.capacity)):
            route, method, cls, bucket, count, seconds, received, sent = _RECORD.unpack_from(
                mem, at + _RECORDS_AT + i * _RECORD.size
            )
            recorder.add(
                -1 if route == _NO_ROUTE else route, min(method, _OTHER),
                min(cls, _LAST_CLASS), min(bucket, len(LATENCY_BUCKETS) - 1), count, seconds,
                received, sent,
            )  # fmt: skip
            total += int(count)
        if lost:
            # as many distinct (route, method, class, latency) records as fit
            # in one child: only a client pipelining hundreds of varied
            # requests on one connection gets here
            recorder.add(-1, _OTHER, _LAST_CLASS, len(LATENCY_BUCKETS) - 1, lost, 0.0, 0, 0)
            if not _warned_full:
                _warned_full.append(True)
                logger.warning(
                    "A fork child answered more kinds of request than its figures block "
                    "holds: %d of them are counted as OTHER/5xx of no route", lost
                )
        _TALLY_HEAD.pack_into(mem, at, 0, 0)
        return total


class ChildTally:
    """A fork child's figures (``Tally``): each request it answers goes
    straight into its slot's ``ChildBlock``; nothing to publish as it exits."""

    __slots__ = (
        "recorder", "mem", "offset", "capacity", "written", "lost", "last", "websockets",
    )

    def __init__(self, recorder: Recorder, block: ChildBlock) -> None:
        #: the parent's recorder, read only: its routes
        self.recorder = recorder
        self.mem = block.mem
        self.offset = block.offset
        self.capacity = block.capacity
        self.written = 0
        self.lost = 0
        #: (route, method, class, bucket) of the last record written, and where
        self.last: tuple[tuple[int, int, int, int], int] | None = None
        self.websockets = 0  # (the parent counts its WebSocket children itself)

    def record(
        self, path: str, method: str, status: int, latency: float, received: int, sent: int
    ) -> None:
        route = self.recorder._only
        if route < 0:
            route = self.recorder.route_match(path)
        cls = status // 100 - 1
        if not 0 <= cls <= _LAST_CLASS:
            cls = _LAST_CLASS
        self._add(
            (_NO_ROUTE if route < 0 else route, _METHOD_INDEX.get(method, _OTHER), cls,
             bisect_left(LATENCY_BUCKETS, latency)),
            latency, received, sent,
        )  # fmt: skip

    def server_answered(self, status: int) -> None:
        self._add((_NO_ROUTE, _OTHER, min(max(status // 100 - 1, 0), _LAST_CLASS), 0), 0.0, 0, 0)

    def _add(
        self, key: tuple[int, int, int, int], latency: float, received: int, sent: int
    ) -> None:
        mem = self.mem
        last = self.last
        if last is not None and last[0] == key:
            at = last[1]
        else:
            at = self._find(key)
        if at < 0:
            if self.written >= self.capacity:
                self.lost += 1
                _TALLY_HEAD.pack_into(mem, self.offset, self.written, self.lost)
                return
            at = self.offset + _RECORDS_AT + self.written * _RECORD.size
            _RECORD.pack_into(mem, at, *key, 1, latency, received, sent)
            self.written += 1
            _TALLY_HEAD.pack_into(mem, self.offset, self.written, self.lost)  # (the record first)
        else:
            *_, count, seconds, got, gave = _RECORD.unpack_from(mem, at)
            _RECORD.pack_into(
                mem, at, *key, count + 1, seconds + latency, got + received, gave + sent
            )
        self.last = (key, at)

    def _find(self, key: tuple[int, int, int, int]) -> int:
        """Where the record of ``key`` is; -1 when there is none yet."""
        start = self.offset + _RECORDS_AT
        for i in range(self.written):
            at = start + i * _RECORD.size
            if _RECORD.unpack_from(self.mem, at)[:4] == key:
                return at
        return -1
