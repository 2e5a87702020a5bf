"""``Response.start`` with a reason phrase (the ``qactuar.http.response.reason`` extension).

RFC 9112 §4: ``status-line = HTTP-version SP status-code SP [ reason-phrase ]``,
``reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )``. A phrase with any other
byte could end the status line and add fields (response splitting): refused as
a bad header field is. With a phrase the status may be 200-999; without, 200-599.
"""

from __future__ import annotations

import pytest

from qactuar.http import LocalProtocolError, Response


def head(status: int, reason: str | bytes | None) -> bytes:
    response = Response("GET", "1.1", True, b"", b"")
    response.start(status, [], reason)
    return response.body(b"x", False).partition(b"\r\n")[0]


@pytest.mark.parametrize(("status", "reason", "line"), [
    (200, "Fine", b"HTTP/1.1 200 Fine"),
    (400, "Bad Thing", b"HTTP/1.1 400 Bad Thing"),
    (682, "Foo", b"HTTP/1.1 682 Foo"),
    (999, "Last\tone", b"HTTP/1.1 999 Last\tone"),
    (404, "Caf\xe9", b"HTTP/1.1 404 Caf\xe9"),  # latin-1 (obs-text)
    (404, b"Caf\xe9 \x80\xff", b"HTTP/1.1 404 Caf\xe9 \x80\xff"),
    (500, "", b"HTTP/1.1 500 "),  # the phrase is optional
    (304, "Same", b"HTTP/1.1 304 Same"),
])
def test_the_reason_phrase_is_the_status_lines(status, reason, line):
    assert head(status, reason) == line


def test_without_a_reason_the_standard_phrase():
    assert head(404, None) == b"HTTP/1.1 404 Not Found"


@pytest.mark.parametrize("reason", [
    "OK\r\nX-Injected: 1", "OK\nX", "OK\r", "a\x00b", "\x1b[2J", "del\x7f", b"a\x0bb",
    "\u2028", "snow \u2603",  # not latin-1
])
def test_a_reason_with_a_control_byte_or_beyond_latin1_is_refused(reason):
    response = Response("GET", "1.1", True, b"", b"")
    with pytest.raises(LocalProtocolError, match="Invalid reason phrase"):
        response.start(200, [], reason)


@pytest.mark.parametrize("reason", [42, ["OK"], True])
def test_a_reason_that_is_no_string_is_refused(reason):
    response = Response("GET", "1.1", True, b"", b"")
    with pytest.raises(LocalProtocolError, match="Invalid reason phrase"):
        response.start(200, [], reason)


@pytest.mark.parametrize(("status", "reason"), [
    (1000, "Big"), (99, "Small"), (100, "Continue"), (199, "Early"), (600, None),
    (999, None), ("200", "OK"), (True, "OK"), (200.0, "OK"),
])
def test_status_200_to_999_with_a_reason_200_to_599_without(status, reason):
    response = Response("GET", "1.1", True, b"", b"")
    with pytest.raises(LocalProtocolError, match="Invalid response status"):
        response.start(status, [], reason)


@pytest.mark.parametrize("first_headers", [
    [(b"bad name", b"v")],
    [(b"content-length", b"5"), (b"x", b"a\r\nb")],  # a length, then a bad field
    [(b"connection", b"close"), (b"date", b"d"), (b"bad\x00", b"v")],
])
def test_a_refused_start_leaves_nothing_for_the_apps_retry(first_headers):
    """The app catches the refusal and starts again, plainly: the retry alone counts."""
    response = Response("GET", "1.1", True, b"date: D\r\n", b"")
    with pytest.raises(LocalProtocolError):
        response.start(799, first_headers, "Custom")
    response.start(200, [(b"content-length", b"7")])
    head, _, rest = response.body(b"retried", False).partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK", b"date: D", b"content-length: 7"
    ]
    assert rest == b"retried" and response.keep_alive and response.status == 200
