"""Apps for tests/test_admin_live*.py, mounted and unmounted while a server serves.

``LIVE_NOTES`` names a directory the apps write their markers to: ``startup-<name>``
and ``shutdown-<name>`` (with the pid) as their lifespan runs, ``inflight-<name>``
as a ``slow`` request reaches the app; a ``slow`` request then waits (60 s at
most) until the file ``release-<name>`` exists.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

#: Bound on every wait: a test that forgets to release costs a minute, not forever.
LIMIT = 60.0


def _note(name: str) -> Path:
    return Path(os.environ.get("LIVE_NOTES", "/nonexistent")) / name


async def _text(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def make(name: str, fail_startup: bool = False) -> Any:
    """An app answering ``<name> <root_path>``; ``/slow`` waits for the test."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if fail_startup:
                        await send({"type": "lifespan.startup.failed",
                                    "message": f"{name}: database unreachable"})
                        return
                    _note(f"startup-{name}").write_text(str(os.getpid()))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    _note(f"shutdown-{name}").write_text(str(os.getpid()))
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].endswith("/slow"):
            _note(f"inflight-{name}").write_text(str(os.getpid()))
            release = _note(f"release-{name}")
            for _ in range(int(LIMIT / 0.01)):
                if release.exists():
                    break
                await asyncio.sleep(0.01)
        if scope["path"].endswith("/sleep"):
            await asyncio.sleep(float(scope["query_string"] or b"0"))
        await _text(send, f"{name} {scope['root_path']}".encode())

    return app


steady = make("steady")
blog = make("blog")
shop = make("shop")
bad_startup = make("bad", fail_startup=True)
not_an_app = 42
