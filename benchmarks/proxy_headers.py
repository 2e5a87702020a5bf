"""What proxy headers cost per request: building a request's scope, with and without them.

A micro-benchmark of ``server.handoff.http_cycle`` (the scope and the cycle
of one request, as the core builds them for every model), interleaved over
rounds and the best round kept, for a browser-like request of eight header
fields:

- ``PROXY_HEADERS`` off, and a peer that is no trusted proxy (the same path);
- a trusted peer whose request has no proxy header (a benchmark client on
  127.0.0.1, which the default ``FORWARDED_ALLOW_IPS`` trusts);
- a trusted peer sending ``X-Forwarded-For`` and ``X-Forwarded-Proto`` (a
  request through nginx).

    python benchmarks/proxy_headers.py [--rounds 20]   # prints microseconds per request
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

from qactuar.config import Config
from qactuar.http import RequestHead, RequestParser
from qactuar.server.handoff import http_cycle
from qactuar.server.protocol import HTTPProtocol
from qactuar.server.server import ServerState

REQUEST = (
    b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip\r\nAccept-Language: en\r\nCookie: a=b\r\nX-Request-Id: 1\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
PROXIED = REQUEST.replace(
    b"X-Request-Id: 1", b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https"
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    pass


def case(request: bytes, forwarded: bool) -> Callable[[], object]:
    state = ServerState(app, Config())
    conn = HTTPProtocol(state)
    conn.client, conn.server = ("127.0.0.1", 50000), ("127.0.0.1", 8000)
    conn.forwarded = forwarded  # what the connection's peer was judged to be
    head = RequestParser(state.limits).feed(request)[0]
    assert isinstance(head, RequestHead)
    return lambda: http_cycle(conn, head)


def main(rounds: int = 20) -> None:
    cases = {
        "untrusted peer, or PROXY_HEADERS off": case(REQUEST, False),
        "trusted peer, no proxy header": case(REQUEST, True),
        "trusted peer, X-Forwarded-For/-Proto": case(PROXIED, True),
    }
    best = dict.fromkeys(cases, float("inf"))
    number = 20000
    for _ in range(rounds):
        for name, run in cases.items():
            best[name] = min(best[name], timeit.timeit(run, number=number) / number)
    for name, seconds in best.items():
        print(f"{name:40s} {seconds * 1e6:6.2f} us per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    main(parser.parse_args().rounds)
