"""Pipelined requests parsed only as fast as they are answered.

A client may send many requests without waiting for the answers
(pipelining): one read of 256 KiB holds ten thousand minimal GETs. Parsed at
once, each would become a queued ``HTTPCycle`` (scope, head, response: some
400 bytes apiece, 16-21 times the bytes sent) held for as long as the client
does not read its answers. So the parser is fed a request at a time
(``RequestParser.feed_paced``: a head and the body bytes that came with it,
and a body refused in the same read is refused before its request is handed
on): once a complete request head waits
behind the one in flight, parsing stops, the unparsed rest of the read is kept as it came
(``conn._unparsed`` from ``conn._unparsed_at``: bounded by the read size)
and reading pauses. When the request in flight is answered and the waiting
one starts (``HTTPProtocol._next``), ``resume`` parses on from there, on the
next turn of the loop.

A connection then holds at most: the request in flight, one or two waiting,
and the rest of one read, so its memory is a small multiple of the read
size however many requests the client pipelines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..http import ProtocolError
from .proxied import read_proxy_header

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

__all__ = ["received", "resume"]


def received(conn: HTTPProtocol, data: bytes) -> None:
    """``conn.data_received``: the bytes go to the PROXY header, a WebSocket, or the parser."""
    if conn.proxy_header is not None:
        data = read_proxy_header(conn, conn.proxy_header, data)
        if not data:
            return
    if conn._ws is not None:
        conn._ws.feed(data)
        return
    if conn._unparsed:
        # read while a request waited (a TLS record decrypted after the pause)
        data = conn._unparsed[conn._unparsed_at :] + data
        if conn.pipeline:
            conn._unparsed, conn._unparsed_at = data, 0
            conn.pause_reading()
            return
    feed(conn, data, 0)


def feed(conn: HTTPProtocol, data: bytes, at: int) -> None:
    """Parse ``data[at:]`` a request at a time; keep the rest once a request waits."""
    parser = conn.parser
    size = len(data)
    while True:
        was_idle = parser.idle
        try:
            events = parser.feed(data, at, True)  # (feed_paced, one call less)
            at = parser.stopped
        except ProtocolError as exc:
            # serve what came complete before the bad bytes, then answer
            conn._unparsed = b""
            conn._handle_events(exc.events)
            conn._protocol_error(exc)
            return
        # while the events are handled the rest is still to come
        conn._unparsed, conn._unparsed_at = (data, at) if at < size else (b"", 0)
        conn._handle_events(events)
        if conn._half_closed:
            _after_fin(conn)
        if parser.in_head:
            if was_idle:
                conn.deadline = conn.state.clock + conn.state.header_timeout
        elif conn._parsing is not None:  # BODY_TIMEOUT, between two reads (body.py)
            conn.deadline = conn.state.body_deadline(conn._parsing) if conn._reading else 0.0
        elif conn.cycle is not None:
            conn.deadline = 0.0
        if parser.upgraded and not conn._upgraded:
            if conn._ws is not None:
                if parser.upgrade_tail:
                    conn._ws.feed(parser.upgrade_tail)
            else:
                conn._on_upgrade()
        if conn._closing or conn._error is not None or conn._ws is not None:
            conn._unparsed = b""
            return
        if conn.pipeline:
            conn.pause_reading()  # a request waits: the rest is parsed after it
            return
        if at >= size:
            return


def _after_fin(conn: HTTPProtocol) -> None:
    """The client's FIN came before these requests were parsed (a fork child reads on)."""
    last = None
    for cycle in (conn.cycle, *conn.pipeline):
        if cycle is not None:
            cycle.client_finished()
            last = cycle
    if not conn._unparsed and last is not None and not last.response.head_sent:
        last.response.keep_alive = False  # the last one: its response says "connection: close"


def resume(conn: HTTPProtocol) -> None:
    """The waiting request has started: parse on, now.

    Now, before its application runs (its task starts on a later turn of the
    loop): the kept rest may hold that request's own body, and an app that
    answers without reading it must find it complete, or its response would
    say ``connection: close`` and what follows would be lost.
    """
    if conn._unparsed:
        _parse_on(conn)
    else:
        conn.resume_reading()


def _parse_on(conn: HTTPProtocol) -> None:
    if not conn._unparsed or conn.pipeline or conn._closing:
        return
    feed(conn, conn._unparsed, conn._unparsed_at)
    if not conn._unparsed:
        conn.resume_reading()
