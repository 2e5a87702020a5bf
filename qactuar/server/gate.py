"""What the server settles itself, before (or around) the application.

- ``HEALTH_PATH``: a GET or HEAD of exactly that path (the request target's
  path, before ``ROOT_PATH``, any query ignored) is answered ``200 ok`` while
  serving and ``503 stopping`` once a graceful stop began, so that a
  balancer polling on a kept-alive connection takes the process out before
  it goes. No app runs, the fork model's parent answers without forking, it
  is not refused by ``LIMIT_CONCURRENCY`` and it writes no access-log line
  (balancers poll every second).
- ``LIMIT_CONCURRENCY``: a request that would start while that many are in
  flight in this process is answered ``503`` with ``Retry-After: 1`` at once,
  never queued. What is in flight is the process model's to count
  (``ServerState.in_flight``): tasks running an app (async, each prefork
  worker), live children plus requests waiting for one whose client is
  still there, and relayed (TLS) requests from the moment they arrive
  (fork; a body the parent is still reading does not count: the limit is
  checked again once it is complete, ``fork.py``). An open
  WebSocket counts for its whole life, and an upgrade over the limit is
  refused with 503 too.
- ``HEADERS``: encoded once here into the lines ``Response`` adds when the
  application did not set that field.

Both checks run only when their setting is on: the protocol tests one
attribute of the shared state per request otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..asgi.cycle import HTTPCycle
from ..config_values import parse_header

if TYPE_CHECKING:
    from .server import ServerState

__all__ = ["answered_by_server", "encode_headers", "over_limit", "shed", "UNAVAILABLE_HEADERS"]

_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_NO_STORE = (b"cache-control", b"no-store")
UNAVAILABLE_HEADERS = [(b"retry-after", b"1")]
_OVER_LIMIT = b"Service Unavailable: the server is at its concurrency limit, retry shortly\n"


def encode_headers(items: list[str]) -> tuple[tuple[tuple[bytes, bytes], ...], bytes | None]:
    """HEADERS as (lower-case name, line) pairs, and a ``server`` line if one is given.

    A ``server`` entry replaces the server's own ``Server: qactuar`` (as
    uvicorn's ``--header server:...`` does). Config has checked every item.
    """
    defaults: list[tuple[bytes, bytes]] = []
    server_line = None
    for item in items:
        parsed = parse_header(item)
        assert not isinstance(parsed, str), parsed
        name, value = parsed
        line = b"%s: %s\r\n" % (name.encode("ascii"), value.encode("latin-1"))
        if name.lower() == "server":
            server_line = line
        else:
            defaults.append((name.lower().encode("ascii"), line))
    return tuple(defaults), server_line


def over_limit(state: ServerState) -> bool:
    limit = state.limit_concurrency
    return bool(limit) and state.in_flight() >= limit


def answered_by_server(state: ServerState, cycle: HTTPCycle) -> bool:
    """Answer ``cycle`` here if it is a health check or over the limit; True if it was."""
    head = cycle.head
    if state.health_path and head.path == state.health_path and head.method in ("GET", "HEAD"):
        if state.shutting_down:
            cycle.answer(503, [_PLAIN, _NO_STORE], b"stopping\n", log=False)
        else:
            cycle.answer(200, [_PLAIN, _NO_STORE], b"ok\n", log=False)
        return True
    if over_limit(state):
        shed(cycle)
        return True
    return False


def shed(cycle: HTTPCycle) -> None:
    """LIMIT_CONCURRENCY's answer: 503 with Retry-After."""
    cycle.answer(503, [_PLAIN, *UNAVAILABLE_HEADERS], _OVER_LIMIT)
