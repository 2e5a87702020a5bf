"""An app that tells which socket-activation variables the serving process sees."""

from __future__ import annotations

import json
import os
from typing import Any


async def environ(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    seen = {name: os.environ.get(name) for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")}
    body = json.dumps({"pid": os.getpid(), **seen}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
