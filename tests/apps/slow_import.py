"""An app whose import takes ``SLOW_IMPORT_SECONDS`` while the file ``SLOW_IMPORT_FLAG`` exists.

For prefork tests with PRELOAD off: workers started after the flag appears
spend that long importing (a big app), the others start at once.
"""

from __future__ import annotations

import os
import time
from typing import Any

if os.path.exists(os.environ.get("SLOW_IMPORT_FLAG", "/nonexistent")):
    time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "3")))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
