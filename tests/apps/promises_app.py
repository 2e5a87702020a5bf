"""An app for the tests of README promises (served as 'promises_app:app').

Every path tells the test what it is doing through files in ``$PROMISES_DIR``
(the app writes ``<name>-<pid>`` files; the test creates ``release``):

- ``/hold``: writes ``held-<pid>``, waits (the event loop free) until
  ``release`` exists, then answers ``released <pid>``;
- ``/block``: writes ``blocked-<pid>``, then blocks its event loop (a
  ``time.sleep``) until ``release`` exists;
- ``/ignore-term``: ignores SIGTERM from now on, writes ``ignoring-<pid>``,
  then waits as ``/hold`` does;
- ``/after``: answers ``answered <pid>`` at once, waits until ``release``
  exists, works for 0.3 s, then writes ``after-<pid>`` (work after the
  response);
- ``/cpu?S``: burns S seconds of CPU time (user time, mostly);
  ``/alloc?M``: touches M MiB; both answer with the pid;
- anything else answers with the pid.

Every wait ends after a minute at most.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

LIMIT = 60.0


def _path(name: str) -> str:
    return os.path.join(os.environ["PROMISES_DIR"], name)


def _mark(name: str, text: str = "") -> None:
    # written whole under a temporary name: the test never reads half of it
    final = _path(f"{name}-{os.getpid()}")
    with open(final + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(final + ".tmp", final)


def _released() -> bool:
    return os.path.exists(_path("release"))


async def _until_released() -> None:
    until = time.monotonic() + LIMIT
    while not _released() and time.monotonic() < until:
        await asyncio.sleep(0.01)


async def _reply(send: Any, body: str) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path, query = scope["path"], scope["query_string"].decode()
    pid = os.getpid()
    if path == "/hold":
        _mark("held")
        await _until_released()
        await _reply(send, f"released {pid}")
    elif path == "/block":
        _mark("blocked")
        until = time.monotonic() + LIMIT
        while not _released() and time.monotonic() < until:
            time.sleep(0.01)
        await _reply(send, f"unblocked {pid}")
    elif path == "/ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _mark("ignoring")
        await _until_released()
        await _reply(send, f"released {pid}")
    elif path == "/after":
        await _reply(send, f"answered {pid}")
        await _until_released()
        await asyncio.sleep(0.3)  # the work takes a while
        _mark("after", "done")
    elif path == "/cpu":
        until = time.process_time() + float(query)
        while time.process_time() < until:  # (a system call: rarely)
            for _ in range(20000):
                pass
        await _reply(send, str(pid))
    elif path == "/alloc":
        block = bytearray(int(query) * 1024 * 1024)
        for at in range(0, len(block), 4096):  # every page resident
            block[at] = 1
        await _reply(send, str(pid))
        del block
    else:
        await _reply(send, str(pid))
