"""``Response``, ``error_response`` and ``informational``: events in, bytes out.

The bytes are checked by reading them back with h11, an independent HTTP/1.1
implementation, as a client would, as well as by looking at the raw lines.
"""

from __future__ import annotations

import h11
import pytest

from qactuar.http import LocalProtocolError, Response, error_response, informational

DATE = b"date: Tue, 01 Dec 2026 00:00:00 GMT\r\n"
SERVER = b"server: qactuar\r\n"


def response(method="GET", version="1.1", keep_alive=True, date=DATE, server=SERVER):
    return Response(method, version, keep_alive, date, server)


def split(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(status line, header lines lower-cased names, body bytes)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    lines = head.split(b"\r\n")
    return lines[0], lines[1:], body


def names(lines: list[bytes]) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in lines]


def field(lines: list[bytes], name: bytes) -> list[bytes]:
    return [
        line.split(b":", 1)[1].strip() for line in lines if line.split(b":", 1)[0].lower() == name
    ]


def read_with_h11(data: bytes, method: bytes = b"GET"):
    """Parse ``data`` as an HTTP/1.1 client that sent ``method``: (response, body, ended)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    head, body, ended = None, b"", False
    for _ in range(1000):
        event = client.next_event()
        if isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            ended = True
            break
        else:
            break
    if not ended and head is not None and client.their_state is h11.SEND_BODY:
        client.receive_data(b"")  # the server closed the connection
        for _ in range(1000):
            event = client.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                ended = True
                break
            else:
                break
    return head, body, ended


# --- whole bodies ------------------------------------------------------------------------


def test_whole_body_gets_content_length_and_date_and_server():
    r = response()
    r.start(200, [(b"content-type", b"text/plain")])
    data = r.body(b"Hello", more=False)
    status, lines, body = split(data)
    assert status == b"HTTP/1.1 200 OK"
    assert field(lines, b"content-length") == [b"5"]
    assert field(lines, b"date") == [DATE[6:-2]]
    assert field(lines, b"server") == [b"qactuar"]
    assert field(lines, b"content-type") == [b"text/plain"]
    assert b"transfer-encoding" not in names(lines)
    assert body == b"Hello"
    assert r.complete and r.keep_alive and r.body_bytes == 5
    head, body, ended = read_with_h11(data)
    assert head.status_code == 200 and body == b"Hello" and ended


def test_nothing_is_written_before_the_first_body_piece():
    r = response()
    assert r.start(200, []) is None
    assert not r.head_sent
    r.body(b"", more=False)
    assert r.head_sent


def test_empty_whole_body_gets_content_length_zero():
    r = response()
    r.start(200, [])
    status, lines, body = split(r.body(b"", more=False))
    assert field(lines, b"content-length") == [b"0"]
    assert body == b""


def test_app_content_length_is_kept_and_never_duplicated():
    r = response()
    r.start(200, [(b"Content-Length", b"11"), (b"content-length", b"11")])
    data = r.body(b"hello ", more=True) + r.body(b"world", more=False)
    status, lines, body = split(data)
    assert field(lines, b"content-length") == [b"11"]
    assert b"transfer-encoding" not in names(lines)
    assert body == b"hello world"
    assert r.keep_alive
    assert read_with_h11(data)[1:] == (b"hello world", True)


def test_conflicting_or_invalid_content_length_from_the_app_is_refused():
    r = response()
    with pytest.raises(LocalProtocolError):
        r.start(200, [(b"content-length", b"5"), (b"content-length", b"6")])
    for bad in (b"-1", b"abc", b""):
        with pytest.raises(LocalProtocolError):
            response().start(200, [(b"content-length", bad)])


def test_app_transfer_encoding_is_replaced_by_the_servers_framing():
    r = response()
    r.start(200, [(b"transfer-encoding", b"chunked")])
    status, lines, body = split(r.body(b"abc", more=False))
    assert b"transfer-encoding" not in names(lines)
    assert field(lines, b"content-length") == [b"3"]
    assert body == b"abc"


# --- streaming -------------------------------------------------------------------------


def test_streaming_to_http11_is_chunked():
    r = response()
    r.start(200, [])
    data = r.body(b"hello ", more=True)
    data += r.body(b"", more=True)  # an empty piece is not the end
    data += r.body(b"world", more=True)
    data += r.body(b"", more=False)
    status, lines, body = split(data)
    assert field(lines, b"transfer-encoding") == [b"chunked"]
    assert b"content-length" not in names(lines)
    assert body == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    assert r.keep_alive and r.complete and r.body_bytes == 11
    assert read_with_h11(data)[1:] == (b"hello world", True)


def test_streaming_last_piece_with_data_ends_the_chunks():
    r = response()
    r.start(200, [])
    data = r.body(b"a", more=True) + r.body(b"bc", more=False)
    assert data.endswith(b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n")
    assert read_with_h11(data)[1:] == (b"abc", True)


def test_streaming_to_http10_is_close_delimited():
    r = response(version="1.0", keep_alive=True)
    r.start(200, [])
    data = r.body(b"hello ", more=True)
    assert r.keep_alive is False
    data += r.body(b"world", more=False)
    status, lines, body = split(data)
    assert b"transfer-encoding" not in names(lines)
    assert b"content-length" not in names(lines)
    assert field(lines, b"connection") == [b"close"]
    assert body == b"hello world"


def test_whole_body_to_http10_keep_alive_says_keep_alive():
    r = response(version="1.0", keep_alive=True)
    r.start(200, [])
    status, lines, body = split(r.body(b"ok", more=False))
    assert field(lines, b"connection") == [b"keep-alive"]
    assert field(lines, b"content-length") == [b"2"]
    assert r.keep_alive


def test_whole_body_to_http10_without_keep_alive_says_close():
    r = response(version="1.0", keep_alive=False)
    r.start(200, [])
    status, lines, body = split(r.body(b"ok", more=False))
    assert field(lines, b"connection") == [b"close"]
    assert not r.keep_alive


def test_request_without_keep_alive_gets_connection_close():
    r = response(keep_alive=False)
    r.start(200, [])
    status, lines, body = split(r.body(b"ok", more=False))
    assert field(lines, b"connection") == [b"close"]


def test_app_connection_close_ends_keep_alive():
    r = response()
    r.start(200, [(b"Connection", b"close")])
    status, lines, body = split(r.body(b"ok", more=False))
    assert field(lines, b"connection") == [b"close"]
    assert not r.keep_alive


# --- bodyless responses -------------------------------------------------------------------


def test_head_response_has_headers_and_no_body():
    r = response(method="HEAD")
    r.start(200, [(b"content-type", b"text/plain"), (b"content-length", b"13")])
    data = r.body(b"Hello, world!", more=False)
    status, lines, body = split(data)
    assert field(lines, b"content-length") == [b"13"]
    assert field(lines, b"content-type") == [b"text/plain"]
    assert body == b""
    assert r.keep_alive
    head, body, ended = read_with_h11(data, method=b"HEAD")
    assert head.status_code == 200 and body == b"" and ended


def test_head_response_streamed_has_no_body_and_no_chunking():
    r = response(method="HEAD")
    r.start(200, [])
    data = r.body(b"abc", more=True) + r.body(b"def", more=True) + r.body(b"", more=False)
    status, lines, body = split(data)
    assert b"transfer-encoding" not in names(lines)
    assert body == b""
    assert r.keep_alive


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_never_carry_a_body(status):
    r = response()
    r.start(status, [(b"etag", b'"x"')])
    data = r.body(b"not allowed", more=True) + r.body(b"either", more=False)
    status_line, lines, body = split(data)
    assert status_line.startswith(b"HTTP/1.1 %d" % status)
    assert body == b""
    assert b"transfer-encoding" not in names(lines)
    assert field(lines, b"etag") == [b'"x"']
    assert r.keep_alive
    head, body, ended = read_with_h11(data)
    assert head.status_code == status and body == b"" and ended


def test_204_never_has_a_content_length():
    # RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204
    r = response()
    r.start(204, [(b"content-length", b"5")])
    status, lines, body = split(r.body(b"hello", more=False))
    assert b"content-length" not in names(lines)
    assert body == b""


def test_304_keeps_the_apps_content_length():
    # RFC 9110 §8.6: a 304 may carry the Content-Length a 200 would have had
    r = response()
    r.start(304, [(b"content-length", b"42")])
    status, lines, body = split(r.body(b"", more=False))
    assert field(lines, b"content-length") == [b"42"]
    assert body == b""


# --- wrong body lengths ---------------------------------------------------------------------


def test_body_overrunning_content_length_raises():
    r = response()
    r.start(200, [(b"content-length", b"5")])
    r.body(b"hel", more=True)
    with pytest.raises(LocalProtocolError):
        r.body(b"lo!!", more=True)


def test_first_piece_overrunning_content_length_raises_and_writes_nothing():
    r = response()
    r.start(200, [(b"content-length", b"2")])
    with pytest.raises(LocalProtocolError):
        r.body(b"hello", more=False)
    # the head was not handed out, so the server can still send a 500
    assert not r.head_sent
    assert not r.complete


def test_short_body_forces_the_connection_closed():
    r = response()
    r.start(200, [(b"content-length", b"10")])
    data = r.body(b"hello", more=False)
    assert r.complete
    assert r.keep_alive is False
    assert split(data)[2] == b"hello"


def test_short_streamed_body_forces_the_connection_closed():
    r = response()
    r.start(200, [(b"content-length", b"10")])
    r.body(b"hel", more=True)
    assert r.keep_alive
    r.body(b"lo", more=False)
    assert r.keep_alive is False


def test_body_after_completion_raises():
    r = response()
    r.start(200, [])
    r.body(b"x", more=False)
    with pytest.raises(LocalProtocolError):
        r.body(b"y", more=False)


def test_abort_closes():
    r = response()
    r.start(200, [])
    r.body(b"x", more=True)
    r.abort()
    assert r.complete and not r.keep_alive


# --- Date and Server ---------------------------------------------------------------------------


def test_apps_own_date_and_server_replace_the_servers():
    r = response()
    r.start(200, [(b"Server", b"mine/1.0"), (b"DATE", b"Mon, 01 Jan 2001 00:00:00 GMT")])
    status, lines, body = split(r.body(b"", more=False))
    assert field(lines, b"server") == [b"mine/1.0"]
    assert field(lines, b"date") == [b"Mon, 01 Jan 2001 00:00:00 GMT"]


def test_date_and_server_lines_can_be_off():
    r = response(date=b"", server=b"")
    r.start(200, [])
    status, lines, body = split(r.body(b"", more=False))
    assert b"date" not in names(lines) and b"server" not in names(lines)


def test_header_name_case_is_sent_as_the_app_gave_it():
    r = response()
    r.start(200, [(b"X-Thing", b"1")])
    status, lines, body = split(r.body(b"", more=False))
    assert b"X-Thing: 1" in lines


# --- invalid input from the app -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [b"", b"bad name", b"bad:name", b"bad\r\nx-injected", b"bad\x00", b"\xff", b"a(b)", b"x\t"],
)
def test_invalid_header_names_are_refused(name):
    with pytest.raises(LocalProtocolError):
        response().start(200, [(name, b"v")])


@pytest.mark.parametrize(
    "value",
    [b"a\r\nX-Injected: 1", b"a\nb", b"a\rb", b"a\x00b", b"a\x01b", b"a\x7fb", b"a\x1bb"],
)
def test_invalid_header_values_are_refused(value):
    with pytest.raises(LocalProtocolError):
        response().start(200, [(b"x-a", value)])


@pytest.mark.parametrize("value", [b"", b"a b\tc", b"caf\xc3\xa9", b"\x80\xff", b'"quoted"'])
def test_valid_header_values_are_sent_as_given(value):
    r = response()
    r.start(200, [(b"x-a", value)])
    status, lines, body = split(r.body(b"", more=False))
    assert b"x-a: " + value in lines


@pytest.mark.parametrize("status", [99, 100, 101, 199, 600, 1000, -1, "200", None])
def test_invalid_final_status_is_refused(status):
    with pytest.raises(LocalProtocolError):
        response().start(status, [])


def test_unknown_status_gets_a_status_line_without_a_phrase():
    r = response()
    r.start(299, [])
    assert r.body(b"", more=False).startswith(b"HTTP/1.1 299 \r\n")


# --- error_response and informational ---------------------------------------------


def test_error_response_is_complete_and_closes():
    data = error_response(400, "Bad thing", DATE, SERVER)
    status, lines, body = split(data)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert field(lines, b"connection") == [b"close"]
    assert field(lines, b"content-length") == [str(len(body)).encode()]
    assert body == b"Bad thing\n"
    assert field(lines, b"date") and field(lines, b"server")
    head, body, ended = read_with_h11(data)
    assert head.status_code == 400 and body == b"Bad thing\n" and ended


@pytest.mark.parametrize("status", [400, 408, 413, 414, 431, 500, 505])
def test_error_response_status_lines(status):
    data = error_response(status, "x")
    assert data.startswith(b"HTTP/1.1 %d " % status)
    assert b"date" not in data and b"server" not in data


def test_informational_100_continue():
    assert informational(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("host", "x"),
                                                                ("content-length", "1")]))
    client.receive_data(informational(100))
    event = client.next_event()
    assert isinstance(event, h11.InformationalResponse) and event.status_code == 100


def test_informational_with_headers():
    data = informational(103, [(b"link", b"</style.css>; rel=preload")])
    assert data == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"


def test_response_before_the_request_body_is_in_closes_the_connection():
    response = Response("POST", "1.1", True, b"", b"")
    response.request_complete = False
    response.start(413, [(b"content-length", b"3")])
    head = response.body(b"big", False).split(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head
    assert response.keep_alive is False
