"""ASGI type aliases shared by the bridge's modules.

The bridge depends on nothing but Tornado and the standard library, so it
spells out the few ASGI shapes it needs instead of importing them.
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
