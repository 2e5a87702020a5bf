"""``check_field``: the one check of an app's header fields, wherever they go.

``Response.start`` (HTTP responses and the WebSocket denial response) and
``accept_handshake`` (``websocket.accept``'s 101) refuse the same fields.
"""

from __future__ import annotations

import pytest

from qactuar.http import LocalProtocolError, RequestHead, Response, check_field
from qactuar.websocket.handshake import accept_handshake

BAD = [
    (b"x-a\r\nset-cookie", b"evil"),
    (b"x-a\nb", b"1"),
    (b"x a", b"1"),
    (b"x:a", b"1"),
    (b"", b"1"),
    (b"x-\x00", b"1"),
    (b"x-a", b"1\r\nset-cookie: evil"),
    (b"x-a", b"1\x00"),
    (b"x-a", b"1\n"),
]
GOOD = [(b"X-Custom_1.a~", b"value\twith tab and \x80 obs-text"), (b"set-cookie", b"a=b; Path=/")]


def head() -> RequestHead:
    return RequestHead(
        "GET", b"/ws", "/ws", b"", "1.1",
        [(b"host", b"a"), (b"upgrade", b"websocket"), (b"connection", b"upgrade"),
         (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"sec-websocket-version", b"13")],
        True, False, b"websocket", False,
    )


def accept(headers: list[tuple[bytes, bytes]]) -> bytes:
    _, response = accept_handshake(head(), None, headers, compression=False,
                                   max_message_bytes=1 << 20, date=b"", server=b"")
    items = response.headers.raw_items()
    return b"\r\n".join(b"%s: %s" % (k.encode("latin-1"), v.encode("latin-1")) for k, v in items)


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_field_refused_by_responses_and_by_websocket_accept(name, value):
    with pytest.raises(LocalProtocolError):
        check_field(name, value)
    with pytest.raises(LocalProtocolError):
        Response("GET", "1.1", True, b"", b"").start(200, [(name, value)])
    with pytest.raises(RuntimeError, match="Invalid header"):
        accept([(name, value)])


@pytest.mark.parametrize(("name", "value"), GOOD)
def test_good_field_goes_everywhere(name, value):
    assert check_field(name, value) == name.lower()
    response = Response("GET", "1.1", True, b"", b"")
    response.start(200, [(name, value)])
    assert b"%s: %s\r\n" % (name, value) in response.body(b"", False)
    assert b"%s: %s" % (name, value) in accept([(name, value)])


def test_fields_found_good_are_remembered_bounded_and_bad_ones_never() -> None:
    from qactuar.http import response

    response._CHECKED.clear()
    assert check_field(b"Content-Type", b"text/plain") == b"content-type"
    assert response._CHECKED[b"Content-Type", b"text/plain"] == (
        b"content-type", b"Content-Type: text/plain\r\n"
    )
    assert check_field(b"Content-Type", b"text/plain") == b"content-type"  # (remembered)
    for name, value in BAD:
        for _ in range(2):  # refused the second time too: nothing bad is kept
            with pytest.raises(LocalProtocolError):
                check_field(name, value)
    assert all(key not in response._CHECKED for key in BAD)
    # values a client cannot make the server keep: long ones, and no more than the bound
    assert check_field(b"x-long", b"v" * 1000) == b"x-long"
    assert (b"x-long", b"v" * 1000) not in response._CHECKED
    for i in range(3 * response._CHECKED_MAX):
        check_field(b"x-id", b"%d" % i)
    assert len(response._CHECKED) <= response._CHECKED_MAX
    # a bytearray (not hashable) is checked all the same
    assert check_field(b"X-A", bytearray(b"1")) == b"x-a"
    with pytest.raises(LocalProtocolError):
        check_field(b"X-A", bytearray(b"1\r\n"))


def test_a_writable_memoryview_is_checked_as_before() -> None:
    # (found by review: hashing one raises ValueError, not TypeError)
    assert check_field(b"X-A", memoryview(bytearray(b"y"))) == b"x-a"
    with pytest.raises(LocalProtocolError):
        check_field(b"X-A", memoryview(bytearray(b"y\n")))
