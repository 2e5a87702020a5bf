"""A test-local ASGI prefix router, as a server's APPS table mounts apps.

It keeps the full ``path`` (and ``raw_path``) and extends ``root_path`` by
the matched prefix: current ASGI practice, as Starlette and Hypercorn read
it.  Matching is by whole path segments, longest prefix first.
"""

from __future__ import annotations

from typing import Any


class PrefixRouter:
    def __init__(self, mounts: dict[str, Any]) -> None:
        self._mounts = sorted(mounts.items(), key=lambda item: len(item[0]), reverse=True)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        for prefix, app in self._mounts:
            bare = prefix.rstrip("/")
            if path == bare or path.startswith(bare + "/") or not bare:
                child = dict(scope)
                child["root_path"] = scope.get("root_path", "") + bare
                await app(child, receive, send)
                return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"no mount"})
