"""The fork ceiling: how many fork + _exit + reap cycles per second this machine does.

A process with the same modules imported as the fork model's parent (qactuar,
uvloop, the benchmark app) forks, lets the child ``_exit(0)`` at once and
reaps it, as fast as it can, for ``seconds``. No server can fork a process per
request faster than this; the fork model's requests/s is compared with it.

With ``--loop``, each child first does the least any asyncio server must do
in a fresh process: it creates an event loop (as the fork model does), wraps
one end of a socket pair in a transport, runs the app once with a canned
request and writes a canned response, which the parent reads. That is the
floor under any design that runs the app on an event loop in a new child.

With ``--lean`` (implies ``--loop``), the forking process imports only
asyncio, uvloop, httptools and the app, not qactuar: the *lean fork floor*,
what forking costs from the smallest process that could serve the app.

    python benchmarks/fork_ceiling.py [seconds] [--loop] [--lean]   # prints forks/s
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from typing import Any

LEAN = "--lean" in sys.argv
if LEAN:
    import httptools  # noqa: F401  (what the lean process holds: no qactuar)
    import uvloop
    from apps import hello

    APP: Any = hello
    new_loop: Any = uvloop.new_event_loop
else:
    import qactuar.models.fork  # noqa: F401  (what the fork model's parent imports)
    from qactuar.importer import load_app
    from qactuar.models.loops import loop_factory

    APP = load_app("apps:hello")  # the same app, loaded the same way as the server does
    new_loop = loop_factory("auto")
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, world!"


class _Writer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


async def _serve_once(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(_Writer, sock)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await APP({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    transport.write(RESPONSE)  # type: ignore[attr-defined]


def ceiling(seconds: float, with_loop: bool = False) -> float:
    ours, theirs = socket.socketpair()
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pid = os.fork()
        if pid == 0:
            if with_loop:
                new_loop().run_until_complete(_serve_once(theirs))
            os._exit(0)
        os.waitpid(pid, 0)
        if with_loop and ours.recv(len(RESPONSE)) != RESPONSE:
            raise SystemExit("the child did not answer")
        count += 1
    return count / seconds


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(f"{ceiling(float(args[0]) if args else 5, LEAN or '--loop' in sys.argv):.0f}")
