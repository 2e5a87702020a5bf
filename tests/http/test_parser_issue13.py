"""``RequestParser``: chunk extensions with whitespace, transfer codings, absolute-form Host.

RFC 9112 §7.1.1 (BWS around ``;`` and ``=`` in chunk extensions), §6.1 (a
transfer coding the server does not know gets 501) and §3.2.2 (an
absolute-form target's authority, not Host, names the host).
"""

from __future__ import annotations

import pytest

from qactuar.http import END_OF_MESSAGE, Limits, ProtocolError, RequestHead, RequestParser

CHUNKED = b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
# gunicorn's corpus, tests/requests/valid/ (chunked with extensions, BWS)
GUNICORN_BWS = (
    b"POST /chunked_w_extensions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5; some; parameters=stuff\r\nhello\r\n6 \t;\t blahblah; blah\r\n world\r\n0\r\n\r\n"
)


def parse(data: bytes, piece: int = 0) -> list:
    parser = RequestParser(Limits())
    if not piece:
        return parser.feed(data)
    events: list = []
    for i in range(0, len(data), piece):
        events += parser.feed(data[i : i + piece])
    return events


def refused(data: bytes, piece: int = 0) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(data, piece)
    return info.value


@pytest.mark.parametrize("piece", [0, 1, 2, 3, 5, 7])
def test_gunicorn_chunk_extensions_with_whitespace_give_the_body(piece):
    events = parse(GUNICORN_BWS + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n", piece)
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.path for h in heads] == ["/chunked_w_extensions", "/next"]
    first = events[: events.index(END_OF_MESSAGE)]
    assert b"".join(e for e in first if isinstance(e, bytes)) == b"hello world"
    assert events[-1] is END_OF_MESSAGE


@pytest.mark.parametrize(
    "line",
    [
        b"5;a=b", b"5 ;a", b"5\t;a", b"5; a", b"5;a = b", b"5;a= b", b"5;a =b",
        b'5; a = "q s\\" x"', b"5;a;b=c ; d", b"0005",
    ],
)
def test_chunk_extension_grammar_accepted(line):
    events = parse(CHUNKED + line + b"\r\nhello\r\n0 ; end = yes\r\nX-T: 1\r\n\r\n")
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"hello"
    assert events[-1] is END_OF_MESSAGE


@pytest.mark.parametrize(
    "body",
    [
        b"5 \r\nhello\r\n0\r\n\r\n",  # whitespace after a bare size: not BWS before ';'
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5;\r\nhello\r\n0\r\n\r\n",  # ';' without a name
        b"5;a=\r\nhello\r\n0\r\n\r\n",
        b"5;a b\r\nhello\r\n0\r\n\r\n",
        b'5;a="unterminated\r\nhello\r\n0\r\n\r\n',
        b"5;a=b\nhello\r\n0\r\n\r\n",  # bare LF ends the line
        b"5;a=b\rc\r\nhello\r\n0\r\n\r\n",  # CR inside the line
        b"5;a\x00=b\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the data
        b"5\r\nhello\n0\r\n\r\n",
        b"1" * 17 + b"\r\nhello\r\n0\r\n\r\n",  # more than 64 bits
        b"5;" + b"a" * 5000 + b"\r\nhello\r\n0\r\n\r\n",  # unbounded line
    ],
    ids=lambda b: repr(b[:20]),
)
@pytest.mark.parametrize("piece", [0, 1])
def test_bad_chunk_size_lines_are_refused(body, piece):
    assert refused(CHUNKED + body, piece).status == 400


def test_request_after_a_bws_chunked_body_is_not_hidden_in_it():
    # the size says 3: what follows the 3 bytes must be CRLF, never a request
    error = refused(CHUNKED + b"3 ; x = y\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    assert error.status == 400
    assert [e.path for e in error.events if isinstance(e, RequestHead)] == []


def test_upgrade_request_chunked_body_with_bws_extensions():
    events = parse(
        b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3 ; x = y\r\nabc\r\n0\r\n\r\n"
    )
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"abc"
    assert events[-1] is END_OF_MESSAGE


@pytest.mark.parametrize(
    "fields",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: GZIP , chunked\r\n",
        b"Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: identity, chunked\r\n",
    ],
)
def test_unknown_transfer_coding_before_chunked_gets_501(fields):
    error = refused(b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n5\r\nhello\r\n0\r\n\r\n")
    assert (error.status, error.reason) == (501, "Transfer coding not implemented")


@pytest.mark.parametrize(
    "fields",
    [b"Transfer-Encoding: gzip\r\n", b"Transfer-Encoding: chunked, gzip\r\n",
     b"Transfer-Encoding: chunked, chunked\r\n"],
)
def test_transfer_coding_without_chunked_last_stays_400(fields):
    assert refused(b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n0\r\n\r\n").status == 400


@pytest.mark.parametrize(
    ("target", "host", "path"),
    [
        (b"http://example.org/x", b"example.org", "/x"),
        (b"HTTP://example.org:8080/x?y=1", b"example.org:8080", "/x"),
        (b"https://[::1]:8443", b"[::1]:8443", "/"),
        (b"http://example.org?q", b"example.org", "/"),
    ],
)
def test_absolute_form_authority_replaces_host(target, host, path):
    events = parse(b"GET " + target + b" HTTP/1.1\r\nHost: other\r\nX-A: 1\r\n\r\n")
    head = events[0]
    assert head.path == path
    assert head.headers == [(b"x-a", b"1"), (b"host", host)]


def test_absolute_form_gives_host_to_an_http10_request_without_one():
    head = parse(b"GET http://example.org/x HTTP/1.0\r\n\r\n")[0]
    assert head.headers == [(b"host", b"example.org")]


@pytest.mark.parametrize(
    "target",
    [b"http://user@example.org/x", b"http://user:pw@example.org/", b"ftp://example.org/x",
     b"http://exa mple.org/", b"http:///x"],
)
def test_bad_absolute_form_authority_is_refused(target):
    assert refused(b"GET " + target + b" HTTP/1.1\r\nHost: other\r\n\r\n").status == 400


def test_absolute_form_still_needs_host_in_http11():
    # RFC 9112 §3.2: a 1.1 request without Host is refused whatever its target
    assert refused(b"GET http://example.org/x HTTP/1.1\r\n\r\n").status == 400


@pytest.mark.parametrize("piece", [0, 1, 4, 9, 30])
def test_pipelined_requests_around_a_bws_chunked_one(piece):
    # a Content-Length body holding CRLFCRLF, then a chunked head spelled in
    # capitals, with extensions and a trailer, then a plain GET
    data = (
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n\r\n\r\nab"
        b"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
        b"2 ; a = b\r\nxy\r\n0 ;z\r\nX-T: 1\r\n\r\n"
        b"\r\nGET /4 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    events = parse(data, piece)
    paths, bodies, body = [], [], b""
    for event in events:
        if isinstance(event, RequestHead):
            paths.append(event.path)
        elif isinstance(event, bytes):
            body += event
        else:
            bodies.append(body)
            body = b""
    assert paths == ["/1", "/2", "/3", "/4"]
    assert bodies == [b"", b"\r\n\r\nab", b"xy", b""]


def _fed_head_first(data: bytes, paced: bool) -> list:
    """``data`` in two reads, the first ending exactly at the head's end (as a
    streaming upload comes): the reads the parser's one-head fast path takes."""
    parser = RequestParser(Limits())
    split = data.index(b"\r\n\r\n") + 4
    events: list = []
    for read in (data[:split], data[split:]):
        at = 0
        while at < len(read):
            if paced:
                got, at = parser.feed_paced(read, at)
            else:
                got, at = parser.feed(read), len(read)
            events += got
    return events


@pytest.mark.parametrize("paced", [True, False])
def test_a_chunked_head_read_alone_still_frames_its_body(paced):
    # found by review: a head alone in its read went to llhttp whole and its
    # body skipped ChunkedFraming: BWS refused, an over-long size accepted, and
    # the next request on the connection refused
    events = _fed_head_first(GUNICORN_BWS + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n", paced)
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"hello world"
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.path for h in heads] == ["/chunked_w_extensions", "/next"]
    assert events.count(END_OF_MESSAGE) == 2
    with pytest.raises(ProtocolError):
        _fed_head_first(CHUNKED + b"00000000000000005\r\nhello\r\n0\r\n\r\n", paced)
    events = _fed_head_first(
        CHUNKED + b"7\r\nchunked\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n", paced
    )
    assert [e.path for e in events if isinstance(e, RequestHead)] == ["/chunked", "/after"]
