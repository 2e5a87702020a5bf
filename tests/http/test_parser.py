"""``RequestParser``: bytes in, events out. No sockets (h11-style tests).

Each test feeds the exact bytes a client would send and checks the events (or
the ``ProtocolError`` and its status) a server would act on.
"""

from __future__ import annotations

import pytest

from qactuar.http import END_OF_MESSAGE, Limits, ProtocolError, RequestHead, RequestParser


def parse(data: bytes, limits: Limits | None = None, piece: int = 0) -> list:
    """Feed ``data`` whole, or ``piece`` bytes at a time; return all events."""
    parser = RequestParser(limits or Limits())
    if not piece:
        return parser.feed(data)
    events = []
    for i in range(0, len(data), piece):
        events += parser.feed(data[i : i + piece])
    return events


def heads(events: list) -> list[RequestHead]:
    return [e for e in events if isinstance(e, RequestHead)]


def body_of(events: list) -> bytes:
    return b"".join(e for e in events if isinstance(e, bytes))


def refused(data: bytes, limits: Limits | None = None, piece: int = 0) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(data, limits, piece)
    return info.value


GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


# --- request line, target, headers ---------------------------------------------


def test_simple_get_gives_head_then_end_of_message():
    events = parse(GET)
    assert len(events) == 2 and events[1] is END_OF_MESSAGE
    head = events[0]
    assert isinstance(head, RequestHead)
    assert (head.method, head.http_version, head.path, head.raw_path) == ("GET", "1.1", "/", b"/")
    assert head.query_string == b""
    assert head.has_body is False
    assert head.expect_continue is False
    assert head.upgrade is None


def test_head_split_into_single_bytes_gives_the_same_events():
    whole = parse(GET)
    split = parse(GET, piece=1)
    assert [type(e) for e in split] == [type(e) for e in whole]
    assert split[0].headers == whole[0].headers


def test_nothing_is_emitted_before_the_head_is_complete():
    parser = RequestParser(Limits())
    assert parser.idle
    assert parser.feed(GET[:-2]) == []
    assert parser.in_head and not parser.idle
    events = parser.feed(GET[-2:])
    assert isinstance(events[0], RequestHead)
    assert parser.idle and not parser.in_head


def test_header_names_are_lower_cased_and_values_kept_in_order():
    data = (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Custom-Thing: Some Value\r\n"
        b"ACCEPT: text/html\r\nx-custom-thing: second\r\n\r\n"
    )
    head = heads(parse(data))[0]
    assert head.headers == [
        (b"host", b"a"),
        (b"x-custom-thing", b"Some Value"),
        (b"accept", b"text/html"),
        (b"x-custom-thing", b"second"),
    ]


def test_optional_whitespace_around_values_is_not_part_of_the_value():
    # RFC 9112 §5.1: OWS before and after a field value is excluded from it
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-A:   b c   \r\nX-B:\t\tq\t\r\nX-C: \r\n\r\n"
    head = heads(parse(data))[0]
    assert head.headers == [(b"host", b"a"), (b"x-a", b"b c"), (b"x-b", b"q"), (b"x-c", b"")]


def test_raw_path_is_kept_as_sent_and_path_is_percent_decoded():
    data = b"GET /caf%C3%A9/a%2Fb%20c?q=%20x&y=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    head = heads(parse(data))[0]
    assert head.raw_path == b"/caf%C3%A9/a%2Fb%20c"
    assert head.path == "/café/a/b c"
    assert head.query_string == b"q=%20x&y=1"


def test_invalid_percent_escapes_are_kept_literally():
    head = heads(parse(b"GET /%zz%4 HTTP/1.1\r\nHost: a\r\n\r\n"))[0]
    assert head.path == "/%zz%4"
    assert head.raw_path == b"/%zz%4"


def test_fragment_is_not_part_of_path_or_query():
    # A fragment is never sent to a server (RFC 9112 §3.2); if a client sends
    # one anyway it must not end up in the path or the query string.
    head = heads(parse(b"GET /x?a=1#frag HTTP/1.1\r\nHost: a\r\n\r\n"))[0]
    assert (head.raw_path, head.path, head.query_string) == (b"/x", "/x", b"a=1")
    head = heads(parse(b"GET /y#frag HTTP/1.1\r\nHost: a\r\n\r\n"))[0]
    assert (head.raw_path, head.path, head.query_string) == (b"/y", "/y", b"")


@pytest.mark.parametrize(
    ("target", "raw_path", "query"),
    [
        (b"http://example.com/a/b?x=1", b"/a/b", b"x=1"),
        (b"http://example.com", b"/", b""),
        (b"http://example.com:8080?x=1", b"/", b"x=1"),
        (b"https://example.com:443/p%2Fq?z", b"/p%2Fq", b"z"),
    ],
)
def test_absolute_form_target_gives_path_and_query(target, raw_path, query):
    head = heads(parse(b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n"))[0]
    assert head.raw_path == raw_path
    assert head.query_string == query


def test_asterisk_form_for_options():
    head = heads(parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"))[0]
    assert (head.method, head.raw_path, head.path) == ("OPTIONS", b"*", "*")


def test_http10_request_needs_no_host():
    head = heads(parse(b"GET /old HTTP/1.0\r\n\r\n"))[0]
    assert head.http_version == "1.0"
    assert head.path == "/old"


@pytest.mark.parametrize(
    "host", [b"example.com", b"example.com:8080", b"[::1]:8000", b"127.0.0.1", b"xn--caf-dma.fr",
             b"a-b_c~d.e%41!$&'()*+,;="],
)
def test_valid_host_values_are_accepted(host):
    head = heads(parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"))[0]
    assert head.headers == [(b"host", host)]


def test_empty_host_is_accepted():
    # RFC 9112 §3.2: a target without authority is sent with an empty Host
    head = heads(parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"))[0]
    assert head.headers == [(b"host", b"")]


# --- keep-alive -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", False),
    ],
)
def test_keep_alive_defaults(request_bytes, keep_alive):
    assert heads(parse(request_bytes))[0].keep_alive is keep_alive


# --- pipelining ------------------------------------------------------------------


def test_pipelined_requests_in_one_feed_come_out_in_order():
    data = (
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    events = parse(data)
    assert [e.path if isinstance(e, RequestHead) else e for e in events] == [
        "/1",
        END_OF_MESSAGE,
        "/2",
        b"hello",
        END_OF_MESSAGE,
        "/3",
        END_OF_MESSAGE,
    ]


def test_many_small_pipelined_requests_do_not_count_against_the_header_limit():
    # The header-size limit is per request, not per read.
    data = GET * 100
    events = parse(data, Limits(max_header_bytes=256))
    assert len(heads(events)) == 100
    events = parse(data + b"GET / HT", Limits(max_header_bytes=256))
    assert len(heads(events)) == 100


# --- bodies ---------------------------------------------------------------------


def test_content_length_body():
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    events = parse(data)
    assert heads(events)[0].has_body is True
    assert body_of(events) == b"hello world"
    assert events[-1] is END_OF_MESSAGE


def test_content_length_body_in_pieces_ends_only_when_complete():
    parser = RequestParser(Limits())
    events = parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel")
    assert END_OF_MESSAGE not in events and body_of(events) == b"hel"
    assert not parser.idle
    assert parser.feed(b"lowor") == [b"lowor"]
    assert parser.feed(b"ld") == [b"ld", END_OF_MESSAGE]
    assert parser.idle


def test_content_length_zero_is_no_body():
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert heads(events)[0].has_body is False
    assert events[-1] is END_OF_MESSAGE


def test_chunked_body_with_extensions_and_trailers():
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b"6;a;b=\"quoted\"\r\n world\r\n"
        b"0;last\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
    )
    events = parse(data)
    head = heads(events)[0]
    assert head.has_body is True
    assert body_of(events) == b"hello world"
    assert events[-1] is END_OF_MESSAGE
    # trailers are tolerated but never added to the request's headers
    assert head.headers == [(b"host", b"a"), (b"transfer-encoding", b"chunked")]


def test_chunked_body_byte_by_byte():
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"
    )
    events = parse(data, piece=1)
    assert body_of(events) == b"abc0123456789"
    assert events[-1] is END_OF_MESSAGE


def test_transfer_encoding_is_case_insensitive():
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert body_of(parse(data)) == b"ok"


def test_http10_body_by_content_length():
    events = parse(b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nok")
    assert body_of(events) == b"ok"
    assert events[-1] is END_OF_MESSAGE


@pytest.mark.parametrize(
    "final",
    [
        b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET /1 HTTP/1.0\r\n\r\n",
        b"POST /1 HTTP/1.0\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_bytes_after_a_request_that_closes_the_connection_are_ignored(final):
    # RFC 9112 §9.6: no further request is processed after "close"; what the
    # client sent after it must neither hide the request nor turn into a 400.
    parser = RequestParser(Limits())
    events = parser.feed(final + GET + b"garbage")
    assert [h.path for h in heads(events)] == ["/1"]
    assert events[-1] is END_OF_MESSAGE
    assert parser.feed(b"more \x00 garbage") == []
    assert parser.idle


# --- Expect and Upgrade ------------------------------------------------------------


def test_expect_100_continue_is_flagged_and_the_body_still_parses():
    parser = RequestParser(Limits())
    events = parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    assert heads(events)[0].expect_continue is True
    assert parser.feed(b"abc") == [b"abc", END_OF_MESSAGE]


def test_expect_is_case_insensitive_and_ignored_for_http10():
    data = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"
    assert heads(parse(data))[0].expect_continue is True
    data = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"
    assert heads(parse(data))[0].expect_continue is False


def test_upgrade_request_ends_the_http_stream():
    parser = RequestParser(Limits())
    events = parser.feed(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
        b"\x81\x05hello"
    )
    head = heads(events)[0]
    assert head.upgrade == b"websocket"
    assert parser.upgraded
    assert parser.upgrade_tail == b"\x81\x05hello"
    # what follows is not HTTP and is never parsed as such
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == []


def test_upgrade_in_http10_is_ignored():
    # RFC 9110 §7.8: a server MUST ignore Upgrade received in an HTTP/1.0 request
    events = parse(b"GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert heads(events)[0].upgrade is None
    assert events[-1] is END_OF_MESSAGE
    data = (b"POST / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 4\r\n\r\nbody")
    for piece in (0, 1, 3):
        events = parse(data, piece=piece)
        assert heads(events)[0].upgrade is None
        assert body_of(events) == b"body"
        assert events[-1] is END_OF_MESSAGE


def test_http2_prior_knowledge_preface_gets_505():
    error = refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert error.status == 505


def test_upgrade_header_without_connection_upgrade_is_ignored():
    parser = RequestParser(Limits())
    events = parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n" + GET)
    assert [h.upgrade for h in heads(events)] == [None, None]
    assert not parser.upgraded


def test_upgrade_request_body_reaches_the_body_not_the_tail_in_pieces():
    parser = RequestParser(Limits())
    events = parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 6\r\n\r\nab"
    )
    assert body_of(events) == b"ab" and END_OF_MESSAGE not in events
    # the stream is still HTTP until the body is complete
    assert not parser.upgraded
    assert parser.feed(b"cd") == [b"cd"]
    assert parser.feed(b"efNEXT") == [b"ef", END_OF_MESSAGE]
    assert parser.upgraded
    assert parser.upgrade_tail == b"NEXT"


def test_upgrade_request_with_chunked_body_gives_the_body():
    parser = RequestParser(Limits(max_body_bytes=100))
    events = parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n"
    )
    assert body_of(events) == b"abc" and not parser.upgraded
    events_2 = parser.feed(b"2\r\nde\r\n0\r\nTrailer: t\r\n\r\n")
    assert events_2 == [b"de", END_OF_MESSAGE]
    assert parser.upgraded
    assert heads(events)[0].headers == [
        (b"host", b"a"), (b"connection", b"Upgrade"), (b"upgrade", b"h2c"),
        (b"transfer-encoding", b"chunked"),
    ]


def test_upgrade_request_chunked_body_trailers_are_bounded():
    parser = RequestParser(Limits(max_header_bytes=512))
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: "
    )
    with pytest.raises(ProtocolError) as info:
        for _ in range(1000):
            parser.feed(b"t" * 10)
    assert info.value.status == 431


def test_upgrade_request_with_bad_chunked_body_is_refused():
    parser = RequestParser(Limits())
    with pytest.raises(ProtocolError) as info:
        parser.feed(
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"
        )
    assert info.value.status == 400


def test_upgrade_request_body_counts_against_the_body_limit():
    parser = RequestParser(Limits(max_body_bytes=4))
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"5\r\nabcde\r\n0\r\n\r\n")
    assert info.value.status == 413


def test_upgrade_request_body_reaches_the_body_not_the_tail():
    # RFC 9110 §7.8: the protocol switch happens after the request's body
    parser = RequestParser(Limits())
    events = parser.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 3\r\n\r\nabcNEXT"
    )
    assert body_of(events) == b"abc"
    assert events[-1] is END_OF_MESSAGE
    assert parser.upgrade_tail == b"NEXT"


# --- malformed input and smuggling (each one a ProtocolError) -------------------------

SMUGGLING = {
    "content-length with transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "transfer-encoding with content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "differing content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    ),
    "duplicate content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    ),
    "content-length +5": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
    "content-length -1": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello",
    "content-length list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
    "content-length hex": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
    "content-length empty": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\nhello",
    "content-length overflow": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nhello"
    ),
    "transfer-encoding gzip": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nhello"
    ),
    "transfer-encoding chunked, gzip": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding xchunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding chunkedx": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding identity": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nhello"
    ),
    "transfer-encoding repeated": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding chunked twice in a list": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
    ),
    "invalid chunk size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
    "negative chunk size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"
    ),
    "0x chunk size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"
    ),
    "overflowing chunk size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"
    ),
    "chunk data longer than its size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n"
    ),
    "chunk with bare lf": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"
    ),
    "obs-fold space": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "obs-fold tab": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
    "whitespace before colon": b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
    "whitespace before colon in content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"
    ),
    "whitespace before first header": b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    "empty header name": b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
    "control byte in name": b"GET / HTTP/1.1\r\nHost: a\r\nX-\x01A: b\r\n\r\n",
    "nul in name": b"GET / HTTP/1.1\r\nHost: a\r\nX-\x00A: b\r\n\r\n",
    "control byte in value": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n",
    "nul in value": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
    "del in value": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n",
    "bare cr in value": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
    "invalid method": b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "unknown method": b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
    "lower-case method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "missing host": b"GET / HTTP/1.1\r\n\r\n",
    "repeated host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "repeated host same value": b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    "repeated host in http/1.0": b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    "host with a path": b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "host with userinfo": b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
    "host with a space": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host with a backslash": b"GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n",
    "host in http/1.0 with a path": b"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n",
    "asterisk target for GET": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "transfer-encoding in http/1.0": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bare lf line endings": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare lf after a header": b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
    "space in target": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "non-ascii byte in target": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_malformed_request_is_refused_with_400(data):
    error = refused(data)
    assert error.status == 400
    assert error.reason


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_malformed_request_is_refused_when_fed_byte_by_byte(data):
    assert refused(data, piece=1).status == 400


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_malformed_request_after_a_good_one_still_yields_the_good_one_first(data):
    parser = RequestParser(Limits())
    events = parser.feed(GET)
    assert isinstance(events[0], RequestHead) and events[-1] is END_OF_MESSAGE
    with pytest.raises(ProtocolError):
        parser.feed(data)


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_error_carries_the_complete_requests_that_came_before_it(data):
    # a good request pipelined in the same read as a bad one is not lost
    parser = RequestParser(Limits())
    with pytest.raises(ProtocolError) as info:
        parser.feed(GET + b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok" + data)
    events = info.value.events
    assert [e.path if isinstance(e, RequestHead) else e for e in events] == [
        "/", END_OF_MESSAGE, "/2", b"ok", END_OF_MESSAGE,
    ]


def test_error_in_a_body_drops_the_broken_requests_head_of_the_same_read():
    parser = RequestParser(Limits())
    with pytest.raises(ProtocolError) as info:
        parser.feed(
            GET + b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\nzz\r\n"
        )
    assert [type(e) for e in info.value.events] == [RequestHead, type(END_OF_MESSAGE)]


def test_error_in_a_body_keeps_the_body_pieces_of_the_same_read():
    parser = RequestParser(Limits())
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"3\r\nabc\r\nzz\r\n")
    assert info.value.events == [b"abc"]


def test_limit_error_carries_the_complete_requests_before_it():
    parser = RequestParser(Limits(max_header_count=3))
    many = b"GET /2 HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    with pytest.raises(ProtocolError) as info:
        parser.feed(GET + many)
    assert info.value.status == 431
    assert len(heads(info.value.events)) == 1


@pytest.mark.parametrize("version", [b"2.0", b"3.0", b"0.9"])
def test_http_versions_other_than_1x_get_505(version):
    error = refused(b"GET / HTTP/" + version + b"\r\nHost: a\r\n\r\n")
    assert error.status == 505


def test_error_reason_does_not_echo_request_bytes():
    error = refused(b"GET / HTTP/1.1\r\nHost: a\r\nX-<script>: b\r\n\r\n")
    assert b"<script>" not in error.reason.encode()


def test_cl_te_smuggled_request_never_becomes_a_second_head():
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    parser = RequestParser(Limits())
    with pytest.raises(ProtocolError):
        parser.feed(data)


# --- limits --------------------------------------------------------------------------


def test_url_at_the_limit_passes_one_byte_over_gets_414():
    limits = Limits(max_url_bytes=100)
    ok = b"GET /" + b"a" * 99 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    assert heads(parse(ok, limits))[0].raw_path == b"/" + b"a" * 99
    error = refused(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n", limits)
    assert error.status == 414


def test_url_too_long_is_caught_before_the_line_ends():
    parser = RequestParser(Limits(max_url_bytes=100))
    with pytest.raises(ProtocolError) as info:
        for _ in range(50):
            parser.feed(b"GET /" if parser.idle else b"a" * 10)
    assert info.value.status == 414


def test_url_too_long_fed_in_pieces_gets_414():
    data = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    assert refused(data, Limits(max_url_bytes=100), piece=7).status == 414


def test_too_many_headers_gets_431():
    limits = Limits(max_header_count=10)
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(9))
    assert len(heads(parse(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", limits))) == 1
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(10))
    error = refused(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", limits)
    assert error.status == 431


def test_header_section_too_large_gets_431():
    limits = Limits(max_header_bytes=512)
    huge = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 600 + b"\r\n\r\n"
    assert refused(huge, limits).status == 431
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 50) for i in range(20))
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n", limits).status == 431


def canonical_head(size: int) -> bytes:
    """A head of exactly ``size`` bytes, request line and final CRLF included."""
    start = b"GET /path HTTP/1.1\r\nHost: a\r\nX-Pad: "
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize("piece", [0, 1, 100])
def test_header_limit_is_the_same_whole_or_in_pieces(piece):
    # the limit counts the head as sent; TCP segmentation must not change the answer
    limits = Limits(max_header_bytes=1024)
    assert len(canonical_head(1024)) == 1024
    assert len(heads(parse(canonical_head(1024), limits, piece=piece))) == 1
    assert refused(canonical_head(1025), limits, piece=piece).status == 431


def test_header_section_too_large_is_caught_while_it_trickles_in():
    # a client that never ends its head is stopped at the limit, not at a timeout
    parser = RequestParser(Limits(max_header_bytes=512))
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    with pytest.raises(ProtocolError) as info:
        for i in range(100):
            parser.feed(b"X-%d: %s\r\n" % (i, b"v" * 20))
    assert info.value.status == 431
    assert i < 30


def test_one_huge_header_value_trickling_in_gets_431():
    parser = RequestParser(Limits(max_header_bytes=512))
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
    with pytest.raises(ProtocolError) as info:
        for _ in range(100):
            parser.feed(b"v" * 10)
    assert info.value.status == 431


def test_body_over_the_limit_by_content_length_gets_413_before_any_body():
    limits = Limits(max_body_bytes=10)
    parser = RequestParser(limits)
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
    assert info.value.status == 413
    ok = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld", limits)
    assert body_of(ok) == b"helloworld"


def test_body_over_the_limit_by_chunks_gets_413():
    limits = Limits(max_body_bytes=10)
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    assert refused(data, limits).status == 413
    assert refused(data, limits, piece=3).status == 413
    ok = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert body_of(parse(ok, limits)) == b"hello"


def test_body_limit_is_per_request():
    limits = Limits(max_body_bytes=10)
    one = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n12345678\r\n0\r\n\r\n"
    )
    events = parse(one * 3, limits)
    assert len(heads(events)) == 3


def test_no_body_limit_by_default():
    size = 5 * 1024 * 1024
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    assert len(body_of(parse(data))) == size


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_endless_trailer_trickling_in_gets_431():
    # httptools holds a field until it ends: a trailer must be bounded like a header
    parser = RequestParser(Limits(max_header_bytes=512))
    parser.feed(CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Trailer: ")
    with pytest.raises(ProtocolError) as info:
        for _ in range(1000):
            parser.feed(b"v" * 10)
    assert info.value.status == 431


def test_huge_trailer_in_one_piece_gets_431():
    data = CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Trailer: " + b"v" * 2000 + b"\r\n\r\n"
    assert refused(data, Limits(max_header_bytes=512)).status == 431


def test_too_many_trailer_fields_get_431():
    trailers = b"".join(b"T-%d: v\r\n" % i for i in range(20))
    data = CHUNKED_HEAD + b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n"
    assert refused(data, Limits(max_header_count=10)).status == 431


def test_small_trailers_and_many_small_chunks_pass_tight_limits():
    limits = Limits(max_header_bytes=256, max_header_count=5)
    chunks = b"1;e=x\r\nz\r\n" * 2000  # framing bytes far over the header limit
    data = CHUNKED_HEAD + chunks + b"0\r\nT-1: a\r\nT-2: b\r\n\r\n"
    for piece in (0, 1, 7, 4096):
        events = parse(data, limits, piece=piece)
        assert body_of(events) == b"z" * 2000 and events[-1] is END_OF_MESSAGE
    # and the allowance is per request
    events = parse(data * 3, limits, piece=4096)
    assert len(heads(events)) == 3
