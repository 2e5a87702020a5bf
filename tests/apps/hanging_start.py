"""An app whose start-up hangs, for prefork's WORKER_TIMEOUT (served as 'hanging_start:app').

With ``HANG_IMPORT`` naming a file that exists, importing this module blocks
(a ``time.sleep``, as a slow import does) until that file is removed. With
``HANG_STARTUP`` naming a file that exists, lifespan startup awaits (the
event loop is free, only start-up never ends) until it is removed. Each
writes ``<phase> <pid>`` to ``$HANG_NOTES`` when it begins to hang.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

#: Bound on every hang: a test that forgets to remove a file costs a minute, not forever.
LIMIT = 60.0


def _note(phase: str) -> None:
    with open(os.environ["HANG_NOTES"], "a", encoding="utf-8") as fh:
        fh.write(f"{phase} {os.getpid()}\n")


def _hanging(variable: str) -> bool:
    path = os.environ.get(variable)
    return bool(path) and os.path.exists(str(path))


if _hanging("HANG_IMPORT"):
    _note("import")
    _until = time.monotonic() + LIMIT
    while _hanging("HANG_IMPORT") and time.monotonic() < _until:
        time.sleep(0.01)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup" and _hanging("HANG_STARTUP"):
                _note("startup")
                until = time.monotonic() + LIMIT
                while _hanging("HANG_STARTUP") and time.monotonic() < until:
                    await asyncio.sleep(0.01)
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
