"""Apps for the server-core tests: lifespan, routing, loops (served by 'core:attr')."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

Scope = dict[str, Any]


async def _json(send: Any, data: Any, status: int = 200) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Scope, receive: Any, send: Any, name: str, delay: float = 0) -> None:
    """A lifespan that puts ``name`` into the state; shutdown writes $QT_SHUTDOWN_FILE."""
    message = await receive()
    assert message["type"] == "lifespan.startup"
    if delay:
        await asyncio.sleep(delay)
    scope["state"]["name"] = name
    scope["state"]["items"] = ["from-startup"]
    scope["state"]["started"] = True
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    assert message["type"] == "lifespan.shutdown"
    path = os.environ.get("QT_SHUTDOWN_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"shutdown {name}\n")
    await send({"type": "lifespan.shutdown.complete"})


def make_tagged(name: str, delay: float = 0) -> Any:
    """Reports its name, scope paths and lifespan state; mutates its state copy."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(scope, receive, send, name, delay)
            return
        state = scope.get("state")
        report = {
            "app": name,
            "path": scope["path"],
            "root_path": scope["root_path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "state": dict(state) if state is not None else None,
        }
        if state is not None:
            state["mutated"] = True  # must not leak into the next request
        await _json(send, report)

    return app


tagged_root = make_tagged("root")
tagged_api = make_tagged("api")
tagged_v2 = make_tagged("v2")
tagged_other = make_tagged("other")
slow_startup = make_tagged("slow-startup", delay=0.5)


async def startup_fails(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed",
                    "message": "database at db.example:5432 unreachable"})
        return
    await _json(send, {"served": True})


async def no_lifespan(scope: Scope, receive: Any, send: Any) -> None:
    """Raises on anything but http, like many old ASGI apps."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']}")
    await _json(send, {"served": True})


async def loop_report(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    loop = asyncio.get_running_loop()
    await _json(send, {"loop": f"{type(loop).__module__}.{type(loop).__name__}",
                       "uvloop_imported": "uvloop" in sys.modules})


async def hangs_on_shutdown(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        print("lifespan shutdown hangs", flush=True)  # the tests wait for this line
        await asyncio.sleep(3600)  # never answers lifespan.shutdown
        return
    await _json(send, {"served": True})


async def hangs_on_startup(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        print("lifespan startup hangs", flush=True)  # the tests wait for this line
        await asyncio.sleep(3600)  # never answers lifespan.startup
        return
    await _json(send, {"served": True})


async def raises(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    raise KeyError("missing-thing")


async def shutdown_fails(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "could not flush the queue"})
        return
    await _json(send, {"served": True})


async def raises_on_shutdown(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("exploded during shutdown")
    await _json(send, {"served": True})
