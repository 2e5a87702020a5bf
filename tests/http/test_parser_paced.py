"""``RequestParser.feed_paced``: a request at a time, as the server feeds pipelined bytes.

It stops after the first request of the bytes (with the body bytes that
came with it), or at the latest after a second head; what it did not parse
is the caller's to feed later. A body refused in the same bytes is refused
before its head is handed out.
"""

from __future__ import annotations

import pytest

from qactuar.http import END_OF_MESSAGE, Limits, ProtocolError, RequestHead, RequestParser

GET = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"


def heads(events: list[object]) -> list[str]:
    return [e.raw_path.decode() for e in events if isinstance(e, RequestHead)]


def test_pipelined_gets_come_one_per_call_and_the_rest_is_left() -> None:
    data = b"".join(GET % i for i in range(3))
    parser = RequestParser(Limits())
    at, seen = 0, []
    for i in range(3):
        events, at = parser.feed_paced(data, at)
        assert heads(events) == [f"/{i}"] and events[-1] is END_OF_MESSAGE
        assert at == len(GET % 0) * (i + 1)
        seen.append(at)
    assert seen[-1] == len(data)


def test_a_body_in_the_same_bytes_is_parsed_with_its_head() -> None:
    post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n\r\n\r\nbody"
    data = post + GET % 1 + GET % 2
    events, at = RequestParser(Limits()).feed_paced(data)
    # the POST whole, then the next head: a second head stops it
    assert heads(events) == ["/p", "/1"]
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"\r\n\r\nbody"
    assert at == len(post) + len(GET % 1)


def test_one_request_in_the_bytes_is_fed_whole() -> None:
    events, at = RequestParser(Limits()).feed_paced(b"xx" + GET % 7, 2)
    assert heads(events) == ["/7"] and at == 2 + len(GET % 7)


def test_a_body_over_the_limit_in_the_same_bytes_refuses_its_request_whole() -> None:
    head = b"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"800\r\n" + b"u" * 0x800 + b"\r\n0\r\n\r\n"
    parser = RequestParser(Limits(max_body_bytes=1000))
    with pytest.raises(ProtocolError) as caught:
        parser.feed_paced(GET % 0 + head + body, len(GET % 0))
    assert caught.value.status == 413
    assert heads(caught.value.events) == []  # its head never handed out


@pytest.mark.parametrize("split", [0, 30, 70, 100, 4000])
def test_a_body_of_known_length_is_never_read_as_a_head(split: int) -> None:
    # the parser looks for heads only after the body's Content-Length bytes
    # (so an upload is not searched): a body that reads like a chunked head,
    # whole or split across two reads anywhere, stays body bytes
    body = (b"GET /no HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" * 80)[:4096]
    post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    data = post + GET % 1
    parser = RequestParser(Limits())
    got: list[object] = []
    for chunk in (data[:split], data[split:]) if split else (data,):
        at = 0
        while at < len(chunk):
            events, at = parser.feed_paced(chunk, at)
            got.extend(events)
    assert heads(got) == ["/p", "/1"]
    assert b"".join(e for e in got if isinstance(e, bytes)) == body
    assert got.count(END_OF_MESSAGE) == 2
