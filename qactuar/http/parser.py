"""Request side of HTTP/1.1: bytes in, events out (RFC 9112).

``RequestParser.feed(data)`` returns the events that ``data`` completed:
a ``RequestHead`` once a whole header section is in, then ``bytes`` chunks
of body, then ``END_OF_MESSAGE``; several requests' events may come from one
call when a client pipelines. Anything malformed raises ``ProtocolError``
with the status to answer; the caller answers it and closes the connection,
because after a framing error the next request cannot be found reliably.

llhttp (through httptools) already refuses most request smuggling in its
strict mode: Content-Length together with Transfer-Encoding, repeated or
non-numeric Content-Length, a Transfer-Encoding whose last coding is not
``chunked``, bad chunk sizes, obs-fold, whitespace before the colon and
control bytes in fields (RFC 9112 §5.1, §5.2, §6.1, §7.1, §11.2). This
module adds the rules llhttp leaves to the server:

- limits: URL, header section and count, body, and trailers (bounded like
  the head, since httptools holds each field whole until it ends);
- the Host field (RFC 9112 §3.2): exactly one in 1.1, never more than one,
  and a valid ``host[:port]`` value;
- the asterisk form for OPTIONS only (§3.2.4); a fragment sent in the target
  is dropped (§3.2); an absolute-form target's authority replaces Host
  (§3.2.2); optional whitespace after a field value is not part of it (§5.1);
- chunk-size lines, read by ``ChunkedFraming`` to the letter of §7.1 (llhttp
  refuses the whitespace allowed around ``;`` and ``=`` in extensions) and
  handed to llhttp canonical; a transfer coding before ``chunked`` gets 501
  (§6.1);
- versions other than 1.x get 505; Transfer-Encoding in an HTTP/1.0 request
  is refused (§6.1); Upgrade in HTTP/1.0 is ignored (RFC 9110 §7.8);
- the body of an Upgrade request, which llhttp hands over as if it were the
  new protocol's bytes, is parsed as HTTP: the switch comes after it (RFC
  9110 §7.8);
- bytes that follow a request that closes the connection (``Connection:
  close``, HTTP/1.0 without keep-alive) are ignored, not parsed (§9.6);
- a ``ProtocolError`` carries the events completed before it, so requests
  pipelined ahead of a bad one are still served.
"""

from __future__ import annotations

from typing import Final

import httptools

from .chunked import ChunkedFraming, _FramingError
from .errors import ProtocolError
from .events import END_OF_MESSAGE, Event, RequestHead
from .limits import Limits
from .target import INVALID_HOST, decode_path, split_target
from .upgrade_body import UpgradeBody

__all__ = ["RequestParser"]


_HEAD, _BODY = 0, 1
#: llhttp's messages that deserve another status or wording: (status, reason).
_MESSAGES: Final = {
    "Invalid method encountered": (400, "Invalid method"),
    # a well-formed version llhttp does not speak (HTTP/3.0): RFC 9110 §15.6.6
    "Invalid HTTP version": (505, "HTTP version not supported"),
    # the HTTP/2 connection preface of a client with prior knowledge
    "Pause on PRI/Upgrade": (505, "HTTP/2 is not supported"),
}


class RequestParser:
    """Parses a stream of HTTP/1.x requests from one connection."""

    __slots__ = (
        "_parser",
        "_limits",
        "_events",
        "_state",
        "_url",
        "_headers",
        "_head_bytes",
        "_body_bytes",
        "_body_left",
        "_in_progress",
        "_upgraded",
        "_upgrade_body",
        "_final",
        "_close_after",
        "_chunk_pending",
        "_chunk_events",
        "_trailer_bytes",
        "_trailer_count",
        "_framing",
        "_chunked_head",
        "_in_trailers",
        "_carry",
        "_heads",
        "stopped",
        "upgrade_tail",
    )

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._state = _HEAD
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body_bytes = 0
        #: Bytes of the body in progress still to come, when its length is
        #: known (Content-Length): they hold no head, so none is looked for
        #: in them (``_run``).
        self._body_left = 0
        self._in_progress = False
        #: llhttp stopped at an Upgrade request's head.
        self._upgraded = False
        #: Parses that request's body, which is still HTTP; None if it has none.
        self._upgrade_body: UpgradeBody | None = None
        #: A request that closes the connection is complete: ignore the rest.
        self._final = False
        #: The request being parsed does not keep the connection alive.
        self._close_after = False
        # Trailers are bounded like the head (httptools holds a field whole
        # until it ends): a last chunk's header is followed by no body, so
        # every read that comes after a chunk header without any chunk data
        # or chunk end is trailer bytes.
        self._chunk_pending = False
        self._chunk_events = 0
        self._trailer_bytes = 0
        self._trailer_count = 0
        #: Reads the chunk-size lines of the chunked body being received.
        self._framing: ChunkedFraming | None = None
        #: A chunked request's head just ended: its body goes to a framing.
        self._chunked_head = False
        #: After the last chunk: llhttp reads the trailers line by line.
        self._in_trailers = False
        #: The last bytes given to llhttp outside a chunked body, where a
        #: head's final CRLFCRLF may have begun.
        self._carry = b""
        #: Request heads completed so far (a paced feed stops after one).
        self._heads = 0
        #: Where the last ``feed_paced`` stopped.
        self.stopped = 0
        #: Bytes that followed an Upgrade request's head: the first bytes of
        #: the new protocol.
        self.upgrade_tail = b""

    @property
    def in_head(self) -> bool:
        """True while some, but not all, of a request head has arrived."""
        return self._in_progress and self._state == _HEAD

    @property
    def upgraded(self) -> bool:
        """True once an Upgrade request (head and body) has ended the HTTP/1.1 stream."""
        return self._upgraded and self._upgrade_body is None

    @property
    def idle(self) -> bool:
        """True between requests: no byte of the next one has arrived."""
        return not self._in_progress

    def feed_paced(self, data: bytes, start: int = 0) -> tuple[list[Event], int]:
        """As ``feed(data[start:])``, but stop after the first request parsed.

        Returns the events and where parsing stopped: ``len(data)`` once all
        of it is parsed, else at the end of the first request whose head is
        in ``data[start:]`` (with its body, as far as ``data`` holds it), or
        at the latest just after a second head (a body still to come). A
        server feeds the rest only once it is ready for another request, so
        pipelined requests are parsed as fast as they are answered, never a
        whole read of them at once.
        """
        return self.feed(data, start, True), self.stopped

    def feed(self, data: bytes, start: int = 0, pace: bool = False) -> list[Event]:
        """Parse ``data``; return the events it completed (``pace``: as
        ``feed_paced``, where parsing stopped left in ``stopped``).

        Raises ``ProtocolError`` on malformed input; the parser is then
        unusable and the connection must be closed after the error response.
        The error's ``events`` are those completed before the bad bytes: the
        caller handles them as if returned, then answers the error.
        Once a request that closes the connection is complete, or an Upgrade
        request has ended HTTP, further bytes give no events.
        """
        self.stopped = len(data)
        if self._final or self._upgraded:
            # after a final request, or an Upgrade, the rest is not (our)
            # HTTP, but for the Upgrade request's own body
            if self._final or self._upgrade_body is None:
                return []
            events = self._events = []
            in_trailers = self._chunk_pending
            chunk_events = self._chunk_events
            if start:
                data = data[start:]
            try:
                self._feed_upgrade_body(self._upgrade_body, data)
                if in_trailers:
                    self._count_trailer_read(chunk_events, len(data))
            except ProtocolError as exc:
                self._keep_complete(exc, events)
                raise
            return events
        events = self._events = []
        in_head = self._state == _HEAD
        if in_head:
            self._head_bytes += len(data) - start
            in_trailers = False
        else:
            in_trailers = self._chunk_pending
        chunk_events = self._chunk_events
        try:
            self._run(data, start, pace)
            if self._in_progress:
                if self._state == _HEAD:
                    if self._head_bytes > self._limits.max_header_bytes:
                        raise ProtocolError(431, "Request header section too large")
                elif in_trailers:
                    self._count_trailer_read(chunk_events, len(data) - start)
        except ProtocolError as exc:
            self._keep_complete(exc, events)
            raise
        return events

    def _run(self, data: bytes, start: int = 0, pace: bool = False) -> None:
        """Give ``data`` to llhttp, chunk-size lines read by ``ChunkedFraming``.

        A head ends only at a CRLFCRLF (llhttp refuses bare LF), so outside a
        chunked body the bytes go to llhttp in pieces that each end at the
        next CRLFCRLF: a chunked request's head then ends where a piece does,
        and its body goes to a ``ChunkedFraming`` before llhttp sees it. Bytes
        in which no chunked head can end (no ``chunked`` in them, no head
        begun before them) go to llhttp whole. ``pace``: stop after the piece
        that ends the first request, or a second head (``self.stopped``),
        unless no second head can end in ``data`` (one read, one request:
        the common case).
        """
        if (
            not self._in_progress
            and self._framing is None
            and not self._in_trailers
            and start < len(data)
            and data[start] not in b"\r\n"
            and data.find(b"\r\n\r\n", start) == len(data) - 4
        ):
            # The commonest read of all: one whole head and nothing after it
            # (its first CRLFCRLF is its end), between requests. No second
            # head, nor a byte of a chunked body, can be in it.
            self._carry = data[-3:]
            piece: bytes | memoryview = memoryview(data)[start:] if start else data
            try:
                self._parser.feed_data(piece)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._parser_error(exc, piece)
            if self._chunked_head:  # its body, from the next read on, is framed here (below)
                self._chunked_head = False
                self._carry = b""
                self._framing = ChunkedFraming()
            return
        if (
            self._framing is None
            and not self._in_trailers
            and not (self._in_progress and self._state == _HEAD)
        ):
            # (the common case, so _llhttp inline.) The rest of a body of
            # known length holds no head: heads are looked for after it, so
            # an upload's bytes are not searched (a 64 KiB body: ~80 µs)
            size = len(data)
            scan = min(size, start + self._body_left) if self._in_progress else start
            first = data.find(b"\r\n\r\n", scan)
            if first < 0 or (
                # one head ends with these bytes: whole, unless it is chunked
                # (its body is framed here) or a second head ends across the
                # reads, in the last bytes before and the first here (pace)
                first + 4 == size
                and b"chunked" not in data[scan:].lower()  # (the head's bytes only)
                and not (pace and scan == start
                         and b"\r\n\r\n" in self._carry + data[start : start + 3])
            ):  # fmt: skip
                if start:
                    left = size - start
                    self._carry = data[-3:] if left >= 3 else (self._carry + data[start:])[-3:]
                    piece = memoryview(data)[start:]
                else:
                    self._carry = data[-3:] if size >= 3 else (self._carry + data)[-3:]
                    piece = data
                try:
                    self._parser.feed_data(piece)
                except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                    self._parser_error(exc, piece)
                return
        view = memoryview(data)
        pos, size = start, len(data)
        heads = self._heads
        while pos < size and not (self._final or self._upgraded):
            framing = self._framing
            if framing is not None:
                try:
                    canonical, end = framing.feed(data, pos)
                except _FramingError as exc:
                    self._llhttp(exc.canonical)
                    raise ProtocolError(exc.status, exc.reason) from None
                if canonical:
                    self._llhttp(canonical)
                if end is None:
                    return
                self._framing = None
                self._in_trailers = True
                pos = end
                continue
            if self._in_trailers:
                # the trailers (or the final CRLF) end the message at a LF
                found = data.find(b"\n", pos)
                stop = size if found < 0 else found + 1
                self._llhttp(view[pos:stop])
                if not self._in_progress:
                    self._in_trailers = False
                    self._carry = b""
            else:
                carry = self._carry
                # a body of known length: a piece to its end (no head is in it),
                # paced with the piece after it, as if one
                in_body = self._body_left > 0 and self._in_progress and self._state == _BODY
                if in_body:
                    stop = min(size, pos + self._body_left)
                elif carry and (found := (carry + data[pos : pos + 3]).find(b"\r\n\r\n")) >= 0:
                    stop = pos + found + 4 - len(carry)
                else:
                    found = data.find(b"\r\n\r\n", pos)
                    stop = size if found < 0 else found + 4
                piece = view[pos:stop]
                self._carry = (
                    data[stop - 3 : stop] if stop - pos >= 3 else (carry + piece.tobytes())[-3:]
                )
                self._llhttp(piece)
                if self._chunked_head:
                    self._chunked_head = False
                    self._carry = b""
                    self._framing = ChunkedFraming()
                if pace and not (in_body or self._final or self._upgraded):
                    # after a request whose body (what of it is here) is
                    # parsed, or at the second head: the rest waits
                    done = self._heads - heads
                    if done > 1 or (done and self._state == _HEAD):
                        self.stopped = stop
                        return
            pos = stop
        if pos < size and self._upgraded:
            # the bytes after an Upgrade request's head, beyond the piece
            rest = data[pos:]
            body = self._upgrade_body
            if body is None:
                self.upgrade_tail += rest
            else:
                self._feed_upgrade_body(body, rest)

    def _llhttp(self, piece: bytes | memoryview) -> None:
        try:
            self._parser.feed_data(piece)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parser_error(exc, piece)

    def _count_trailer_read(self, chunk_events: int, size: int) -> None:
        """A whole read after the last chunk's header, with no chunk event: trailers."""
        if self._chunk_pending and self._chunk_events == chunk_events:
            self._trailer_bytes += size
            if self._trailer_bytes > self._limits.max_header_bytes:
                raise ProtocolError(431, "Request trailer section too large")

    @staticmethod
    def _keep_complete(exc: ProtocolError, events: list[Event]) -> None:
        """Give ``exc`` the requests completed before it, not the broken one's head."""
        for i in range(len(events) - 1, -1, -1):
            event = events[i]
            if event is END_OF_MESSAGE:
                break
            if isinstance(event, RequestHead):
                del events[i:]
                break
        exc.events = events

    def _parser_error(self, exc: Exception, data: bytes | memoryview) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            self._upgraded = True
            tail = bytes(data[exc.args[0] :]) if exc.args else b""
            body = self._upgrade_body
            if body is None:
                self.upgrade_tail = tail
            else:
                # llhttp ended the message at the head; the body comes first
                events = self._events
                if events and events[-1] is END_OF_MESSAGE:
                    events.pop()
                self._in_progress = True
                self._state = _BODY
                self._feed_upgrade_body(body, tail)
            return
        if isinstance(exc, httptools.HttpParserCallbackError):
            if isinstance(exc.__context__, ProtocolError):
                raise exc.__context__ from None
            raise exc
        if self._final:
            return  # bytes after a final request: ignored
        message = str(exc.args[0]) if exc.args else "Malformed request"
        status, reason = _MESSAGES.get(message, (400, message))
        raise ProtocolError(status, reason) from None

    def _feed_upgrade_body(self, body: UpgradeBody, data: bytes) -> None:
        tail = body.feed(data)
        if tail is not None:
            self._upgrade_body = None
            self.upgrade_tail = tail

    # httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_progress = True
        self._state = _HEAD
        self._url = b""
        self._headers = []
        self._body_bytes = 0
        self._body_left = 0
        self._chunk_pending = False
        self._trailer_bytes = 0
        self._trailer_count = 0
        self._in_trailers = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_url_bytes:
            raise ProtocolError(414, "Request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._state != _HEAD:
            # a chunked trailer field: tolerated, bounded, not passed on
            limits = self._limits
            self._trailer_bytes += len(name) + len(value) + 4
            self._trailer_count += 1
            if self._trailer_bytes > limits.max_header_bytes:
                raise ProtocolError(431, "Request trailer section too large")
            if self._trailer_count > limits.max_header_count:
                raise ProtocolError(431, "Too many trailer fields")
            return
        headers = self._headers
        # llhttp drops the whitespace before a value, not the one after it
        headers.append((name.lower(), value.rstrip(b" \t")))
        if len(headers) > self._limits.max_header_count:
            raise ProtocolError(431, "Too many header fields")

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version[0] != "1":
            raise ProtocolError(505, "HTTP version not supported")
        headers = self._headers
        limits = self._limits
        method = parser.get_method()
        # the head's size as sent canonically ("name: value\r\n"), request line
        # and blank line included: what the streaming count in feed() sees
        size = len(method) + len(self._url) + 14 + sum(len(n) + len(v) + 4 for n, v in headers)
        if size > limits.max_header_bytes:
            raise ProtocolError(431, "Request header section too large")
        hosts = 0
        expect_continue = False
        upgrade = None
        chunked = False
        codings: list[bytes] = []
        content_length = 0
        for name, value in headers:
            if name == b"host":
                hosts += 1
                if INVALID_HOST.search(value):
                    raise ProtocolError(400, "Invalid Host header")
            elif name == b"content-length":
                content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
                codings.extend(c.strip().lower() for c in value.split(b","))
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif name == b"upgrade":
                upgrade = value.lower()
        if hosts > 1:
            raise ProtocolError(400, "Repeated Host header")
        if version == "1.1":
            if not hosts:
                raise ProtocolError(400, "Missing Host header")
        else:
            expect_continue = False
            if chunked:
                raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if chunked and codings != [b"chunked"]:
            if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                # the body's length cannot be known (RFC 9112 §6.3, §7)
                raise ProtocolError(400, "Invalid Transfer-Encoding")
            # a coding before chunked we cannot decode: an app must never get
            # a still-encoded body (RFC 9112 §6.1)
            raise ProtocolError(501, "Transfer coding not implemented")
        if limits.max_body_bytes and content_length > limits.max_body_bytes:
            raise ProtocolError(413, "Request body too large")
        if upgrade is not None and not parser.should_upgrade():
            upgrade = None
        if upgrade is not None and (chunked or content_length):
            # llhttp stops at this head, even when we ignore the Upgrade
            self._upgrade_body = UpgradeBody(self, chunked, content_length)
        if version != "1.1":
            upgrade = None  # RFC 9110 §7.8: ignored in HTTP/1.0
        raw_path, query, authority = split_target(self._url)
        if authority is not None:
            # RFC 9112 §3.2.2: the target's authority, not Host, is the host
            headers[:] = [field for field in headers if field[0] != b"host"]
            headers.append((b"host", authority))
        if raw_path == b"*" and method != b"OPTIONS":
            raise ProtocolError(400, "Asterisk target is for OPTIONS only")
        keep_alive = parser.should_keep_alive()
        self._close_after = not keep_alive
        self._heads += 1
        self._state = _BODY
        self._chunked_head = chunked and self._upgrade_body is None
        # (an Upgrade request's body goes to UpgradeBody, not through _run)
        self._body_left = 0 if chunked or self._upgrade_body is not None else content_length
        self._events.append(
            RequestHead(
                method.decode("ascii"),
                raw_path,
                decode_path(raw_path),
                query,
                version,
                headers,
                keep_alive,
                expect_continue,
                upgrade,
                chunked or content_length > 0,
            )
        )

    def on_chunk_header(self) -> None:
        self._chunk_pending = True
        self._chunk_events += 1

    def on_chunk_complete(self) -> None:
        self._chunk_pending = False
        self._chunk_events += 1

    def on_body(self, body: bytes) -> None:
        if self._body_left:
            self._body_left -= len(body)
        if self._chunk_pending:
            self._chunk_pending = False
            self._chunk_events += 1
        limit = self._limits.max_body_bytes
        if limit:
            self._body_bytes += len(body)
            if self._body_bytes > limit:
                raise ProtocolError(413, "Request body too large")
        self._events.append(body)

    def on_message_complete(self) -> None:
        if self._close_after and self._upgrade_body is None:
            self._final = True
        self._in_progress = False
        self._state = _HEAD
        self._head_bytes = 0
        self._body_left = 0
        self._events.append(END_OF_MESSAGE)
