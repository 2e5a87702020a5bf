"""Property-based tests of the request parser (``hypothesis``), on a fixed budget.

- Any split of a valid request, or of several pipelined ones, into pieces
  gives the same events as the whole: heads field for field, the same body
  bytes, the same ends of message.
- Fed paced (``feed_paced``, as the server feeds pipelined requests: the
  rest of a read only once the request before is answered), the same
  events come, never more than two request heads per call (a request, its
  body, and the head of the next).
- Random bytes, and valid requests with bytes changed, inserted or cut,
  never raise anything but ``ProtocolError`` (with a 4xx or 5xx status).

Each property runs ``EXAMPLES`` examples with no deadline, so the suite's
time stays predictable; a failure prints the smallest input hypothesis
found, and ``@example`` keeps it as a fixed case once fixed.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qactuar.http import END_OF_MESSAGE, Limits, ProtocolError, RequestHead, RequestParser

EXAMPLES = 150
BUDGET = settings(max_examples=EXAMPLES, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_token = st.text(alphabet=_TCHAR, min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                 max_size=30).map(lambda v: v.strip())
_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%20", max_size=10)


@st.composite
def requests(draw: Any) -> bytes:
    """One valid HTTP/1.1 request: a method, a path, fields, a body framed either way."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = "/" + "/".join(draw(st.lists(_segment, max_size=4)))
    query = draw(st.one_of(st.just(""), _segment.map(lambda q: "?q=" + q)))
    names = draw(st.lists(_token, max_size=5, unique_by=str.lower))
    fields = [(n, draw(_value)) for n in names
              if n.lower() not in ("host", "content-length", "transfer-encoding", "connection",
                                   "upgrade", "expect", "te", "trailer")]
    body = draw(st.binary(max_size=300))
    head = [f"{method} {path}{query} HTTP/1.1", "Host: example.org"]
    head += [f"{n}: {v}" for n, v in fields]
    if body and draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(1, len(body)), max_size=4, unique=True)))
        chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        head.append("Transfer-Encoding: chunked")
        framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        framed = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + framed


def events_of(data: bytes, cuts: list[int], paced: bool = False) -> list[Any]:
    """Feed ``data`` cut at ``cuts``; the events, bodies joined, heads as comparable tuples."""
    parser = RequestParser(Limits())
    events: list[Any] = []
    edges = [0, *sorted(set(cuts)), len(data)]
    for a, b in zip(edges, edges[1:], strict=False):
        piece, at = data[a:b], 0
        if not paced:
            events += parser.feed(piece)
            continue
        for _ in range(len(piece) + 1):
            got, at = parser.feed_paced(piece, at)
            assert sum(1 for e in got if isinstance(e, RequestHead)) <= 2
            events += got
            if at == len(piece):
                break
        assert at == len(piece)
    merged: list[Any] = []
    for event in events:
        if isinstance(event, RequestHead):
            merged.append(tuple(getattr(event, name) for name in RequestHead.__slots__))
        elif isinstance(event, bytes):
            if merged and isinstance(merged[-1], bytes):
                merged[-1] += event
            else:
                merged.append(event)
        else:
            merged.append(event)
    return merged


@BUDGET
@given(st.lists(requests(), min_size=1, max_size=3), st.data())
def test_any_split_of_pipelined_requests_gives_the_same_events(batch: list[bytes],
                                                              data: Any) -> None:
    stream = b"".join(batch)
    whole = events_of(stream, [])
    assert sum(1 for e in whole if e is END_OF_MESSAGE) == len(batch)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert events_of(stream, cuts) == whole


@BUDGET
@given(st.lists(requests(), min_size=1, max_size=4), st.data())
def test_paced_feeding_gives_the_same_events_a_request_at_a_time(batch: list[bytes],
                                                             data: Any) -> None:
    stream = b"".join(batch)
    whole = events_of(stream, [])
    assert events_of(stream, [], paced=True) == whole
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert events_of(stream, cuts, paced=True) == whole


def _feed_all(data: bytes, cuts: list[int]) -> None:
    parser = RequestParser(Limits(max_body_bytes=4096))
    edges = [0, *sorted(set(cuts)), len(data)]
    try:
        for a, b in zip(edges, edges[1:], strict=False):
            parser.feed(data[a:b])
    except ProtocolError as exc:
        assert 400 <= exc.status <= 599, exc.status


@BUDGET
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_random_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    _feed_all(data, [c for c in cuts if c <= len(data)])


@BUDGET
@given(requests(), st.data())
def test_mutated_requests_raise_only_protocol_errors(request: bytes, data: Any) -> None:
    mutated = bytearray(request)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(mutated)))
        action = data.draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip" and where < len(mutated):
            mutated[where] = data.draw(st.integers(0, 255))
        elif action == "insert":
            mutated[where:where] = data.draw(st.sampled_from(
                [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b"\x00", b"0", b"chunked",
                 b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"]))
        else:
            del mutated[where:where + data.draw(st.integers(1, 8))]
    cuts = data.draw(st.lists(st.integers(0, len(mutated)), max_size=6))
    _feed_all(bytes(mutated), cuts)
