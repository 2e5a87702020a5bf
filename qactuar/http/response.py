"""Response side of HTTP/1.1: a status, fields and body pieces in, bytes out.

Framing follows RFC 9112 §6.3 from the server's side:

- HEAD responses and 1xx/204/304 never carry a body (§6.3 rule 1);
  whatever body the application sends for them is dropped. A 204 never
  carries a Content-Length either (RFC 9110 §8.6); HEAD and 304 keep the
  application's.
- The application's own ``Content-Length`` is used when it gives one; a body
  that overruns it is an application error (``LocalProtocolError``, raised
  before anything is framed, so a response whose head was never handed out
  can still be replaced by a 500), one that falls short forces the
  connection closed so the client cannot take a partial body for a whole one.
- Without one, a body sent whole in its first piece gets a Content-Length; a
  streamed body is chunked for HTTP/1.1 clients and close-delimited for
  HTTP/1.0 ones (§7.1, §6.3 rule 8).

The head is held back until the first body piece so that a small response
leaves in one write, and so that its length can still be stated.

qactuar's ``qactuar.http.response.reason`` extension: ``http.response.start``
may carry ``"reason"`` (str or bytes), written as the status line's reason
phrase once checked (RFC 9112 §4: HTAB, SP, visible bytes and obs-text, no
CR, LF or other control byte; a bad one is refused as a bad header field is);
with it a status may be 200-999, without it 200-599 as ASGI says.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Final

from .errors import LocalProtocolError

__all__ = ["Response", "check_field", "check_reason", "error_response", "informational"]

_NONE, _LENGTH, _CHUNKED, _CLOSE = 0, 1, 2, 3

_STATUS_LINES: Final = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("ascii")) for s in http.HTTPStatus
}
# RFC 9110 §5.1 token for names; values are visible bytes, SP and HTAB (§5.5):
# no control byte (CR, LF and NUL above all) but HTAB
_INVALID_NAME: Final = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-zA-Z]")
_INVALID_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ); the same bytes
_INVALID_REASON: Final = _INVALID_VALUE


#: Fields found good, by (name, value) -> (the lower-cased name, the field's
#: line): most apps send the same few on every response, and a lookup costs a
#: fifth of the check. Bounded: emptied when full; values longer than
#: _KEPT_LONGEST are checked every time.
_CHECKED: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
_CHECKED_MAX: Final = 512
_KEPT_LONGEST: Final = 256


def check_field(name: bytes, value: bytes) -> bytes:
    """``name`` lower-cased, if it and ``value`` may go into a response head.

    The one check of every field an application passes: HTTP responses, the
    WebSocket denial response and ``websocket.accept``'s 101. A name must be
    a token (RFC 9110 §5.1), a value must hold no control byte but HTAB (§5.5:
    no CR, LF or NUL), so no application can split a response or add a field.
    Raises ``LocalProtocolError`` otherwise.
    """
    return checked_line(name, value)[0]


def checked_line(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """(``check_field(name, value)``, the field's line in a response head)."""
    try:
        return _CHECKED[name, value]
    except KeyError:
        pass
    except (TypeError, ValueError):  # (a bytearray, a writable memoryview: not hashable)
        return _check_field(name, value), b"%s: %s\r\n" % (name, value)
    found = _check_field(name, value), b"%s: %s\r\n" % (name, value)
    if len(value) <= _KEPT_LONGEST and len(name) <= _KEPT_LONGEST:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[name, value] = found
    return found


def _check_field(name: bytes, value: bytes) -> bytes:
    lname = name.lower()
    if _INVALID_NAME.search(lname) or not lname:
        raise LocalProtocolError(f"Invalid header name {name!r}")
    if _INVALID_VALUE.search(value):
        raise LocalProtocolError(f"Invalid header value {value!r} for {name!r}")
    return lname


def check_reason(status: object, reason: object) -> bytes:
    """The status line for a final ``status`` with the application's ``reason`` phrase.

    ``reason`` is a str (latin-1) or bytes with no control byte but HTAB, so
    it cannot end the status line or add a field; ``status`` may then be any
    final code, 200-999 (RFC 9110 §15: three digits). Raises
    ``LocalProtocolError`` otherwise.
    """
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 999:
        raise LocalProtocolError(f"Invalid response status {status!r}")
    if isinstance(reason, str):
        try:
            encoded = reason.encode("latin-1")
        except UnicodeEncodeError:
            raise LocalProtocolError(f"Invalid reason phrase {reason!r}") from None
    elif isinstance(reason, bytes | bytearray):
        encoded = bytes(reason)
    else:
        raise LocalProtocolError(f"Invalid reason phrase {reason!r}")
    if _INVALID_REASON.search(encoded):
        raise LocalProtocolError(f"Invalid reason phrase {reason!r}")
    return b"HTTP/1.1 %d %s\r\n" % (status, encoded)


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 599:
            raise LocalProtocolError(f"Invalid status code {status!r}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def informational(status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """Bytes of an interim 1xx response, e.g. ``100 Continue`` (RFC 9110 §15.2)."""
    parts = [_status_line(status)]
    for name, value in headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    parts.append(b"\r\n")
    return b"".join(parts)


class Response:
    """Frames one response to one request.

    ``keep_alive`` says, once the head is written, whether the connection
    may carry another request after this response; ``complete`` whether the
    whole body has been framed.
    """

    __slots__ = (
        "status",
        "keep_alive",
        "complete",
        "head_sent",
        "body_bytes",
        "_is_head",
        "_http10",
        "_fields",
        "_length",
        "_mode",
        "_remaining",
        "_date",
        "_server",
        "request_complete",
        "_defaults",
        "_line",
    )

    def __init__(
        self,
        method: str,
        http_version: str,
        keep_alive: bool,
        date: bytes,
        server: bytes,
        defaults: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self._is_head = method == "HEAD"
        self._http10 = http_version == "1.0"
        self.keep_alive = keep_alive
        #: Pre-encoded ``date: …\r\n`` / ``server: …\r\n`` lines, or b"".
        self._date = date
        self._server = server
        #: Default fields (HEADERS) as (lower-case name, encoded line): each is
        #: written unless the application sets a field of that name.
        self._defaults = defaults
        #: Whether the whole request body has been received. A response framed
        #: before it has leaves the rest of the body unread on the connection,
        #: which then cannot carry another request: it says so.
        self.request_complete = True
        self.status = 0
        self.complete = False
        self.head_sent = False
        self.body_bytes = 0
        self._fields: list[bytes] = []
        self._length: int | None = None
        self._mode = _NONE
        self._remaining = 0
        #: The status line when the application gave a reason phrase.
        self._line = b""

    def start(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        reason: str | bytes | None = None,
    ) -> None:
        """Take the status, fields and reason phrase; nothing is written until ``body()``.

        ``reason`` (the ``qactuar.http.response.reason`` extension) replaces
        the standard phrase and allows a status up to 999 (``check_reason``).
        """
        # Nothing is kept until every field passed: a refused start (an
        # error the app may catch) leaves no status line, length or flag
        # behind for its retry.
        line = b""
        if reason is not None:
            line = check_reason(status, reason)
        elif not isinstance(status, int) or not 200 <= status <= 599:
            raise LocalProtocolError(f"Invalid response status {status!r}")
        fields = []
        length = self._length
        keep_alive = self.keep_alive
        date, server = self._date, self._server
        for name, value in headers:
            lname, field = checked_line(name, value)
            if lname == b"content-length":
                try:
                    given = int(value)
                except ValueError:
                    given = -1
                if given < 0 or (length is not None and given != length):
                    raise LocalProtocolError(f"Invalid Content-Length {value!r}")
                length = given
                continue  # written by body() once framing is settled
            elif lname == b"transfer-encoding":
                continue  # framing is the server's job
            elif lname == b"connection":
                if b"close" in value.lower():
                    keep_alive = False
                continue
            elif lname == b"date":
                date = b""
            elif lname == b"server":
                server = b""
            fields.append(field)
        if self._defaults:
            fields.extend(_missing(self._defaults, fields))
        self._line = line
        self._length = length
        self.keep_alive = keep_alive
        self._date, self._server = date, server
        self.status = status
        self._fields = fields

    def body(self, data: bytes, more: bool) -> bytes:
        """Frame one piece of body; the first call also returns the head."""
        if self.complete:
            raise LocalProtocolError("Response already complete")
        if self.head_sent:
            data = self._frame(data, more)
            self.complete = not more
            return data
        status = self.status
        if (
            self._length is not None
            and len(data) > self._length
            and not (self._is_head or status in (204, 304))
        ):
            raise LocalProtocolError(
                f"Response body longer than its Content-Length ({self._length})"
            )
        self.head_sent = True
        self.complete = not more
        fields = self._fields
        if self._is_head or status in (204, 304):
            self._mode = _NONE
            if self._length is not None and status != 204:
                fields.append(b"content-length: %d\r\n" % self._length)
        elif self._length is not None:
            self._mode = _LENGTH
            self._remaining = self._length
            fields.append(b"content-length: %d\r\n" % self._length)
        elif not more:
            self._mode = _LENGTH
            self._remaining = len(data)
            fields.append(b"content-length: %d\r\n" % len(data))
        elif self._http10:
            self._mode = _CLOSE
            self.keep_alive = False
        else:
            self._mode = _CHUNKED
            fields.append(b"transfer-encoding: chunked\r\n")
        if not self.request_complete:
            self.keep_alive = False
        if not self.keep_alive:
            fields.append(b"connection: close\r\n")
        elif self._http10:
            fields.append(b"connection: keep-alive\r\n")
        line = self._line or _status_line(status)
        head = b"%s%s%s%s\r\n" % (line, self._date, self._server, b"".join(fields))
        return head + self._frame(data, more)

    def _frame(self, data: bytes, more: bool) -> bytes:
        mode = self._mode
        if mode == _LENGTH:
            size = len(data)
            if size > self._remaining:
                raise LocalProtocolError(
                    f"Response body longer than its Content-Length ({self._length})"
                )
            self._remaining -= size
            self.body_bytes += size
            if not more and self._remaining:
                self.keep_alive = False  # the client must not wait for the rest
            return data
        if mode == _CHUNKED:
            self.body_bytes += len(data)
            if data:
                chunk = b"%x\r\n%s\r\n" % (len(data), data)
                return chunk + b"0\r\n\r\n" if not more else chunk
            return b"" if more else b"0\r\n\r\n"
        if mode == _CLOSE:
            self.body_bytes += len(data)
            return data
        return b""

    def abort(self) -> None:
        """The application failed mid-response: the connection must close."""
        self.keep_alive = False
        self.complete = True


def _missing(defaults: tuple[tuple[bytes, bytes], ...], fields: list[bytes]) -> list[bytes]:
    """The default lines whose field the application did not set."""
    given = {line[: line.index(b":")].lower() for line in fields}
    return [line for name, line in defaults if name not in given]


def error_response(
    status: int,
    reason: str,
    date: bytes = b"",
    server: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """A complete plain-text response that closes the connection."""
    body = reason.encode("utf-8", "replace") + b"\n"
    fields = b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    fields += b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
    return b"%s%s%s%scontent-length: %d\r\n\r\n%s" % (
        _status_line(status),
        date,
        server,
        fields,
        len(body),
        body,
    )
