"""The one-time warning for a Tornado app whose state the process model splits.

qactuar tells apps its process model in every scope
(``scope["extensions"]["qactuar.process_model"] == {"model": "fork"}``; other
servers say nothing, and the bridge then says nothing either). Under ``fork``
(a fresh process per request) and ``prefork`` (one process per worker),
state a Tornado app keeps in memory is not shared by the requests that
follow. What the bridge can see of that, by looking at the application's
rules once, without running anything:

- a `WebSocketHandler` subclass: its connections live in one process, so a
  broadcast to "all clients" reaches only those of its process;
- a handler with a coroutine method whose class, module or ``initialize``
  arguments (the rule's kwargs, the same objects for every request) hold a
  waiting primitive (a Tornado or asyncio ``Condition``, ``Event``,
  ``Semaphore``, ``Queue`` or ``Future``), directly or as an attribute of
  such an object, as the long-poll chat's ``global_message_buffer.cond``: a
  request that waits for another one, which in another process never comes.

That is a hint, not a proof either way: state kept in a plain dict or set
goes unseen, and a primitive used within one request is reported. The
warning says so, and names the README section to read.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Iterator
from typing import Any

from tornado import locks, queues, routing, web
from tornado.websocket import WebSocketHandler

from ._types import PROCESS_MODEL_EXTENSION, Scope

# qactuar's own server logger: the warning is only given under qactuar
logger = logging.getLogger("qt_server")

_WAITERS = (
    locks.Condition,
    locks.Event,
    locks.Semaphore,
    queues.Queue,
    asyncio.Condition,
    asyncio.Event,
    asyncio.Queue,
    asyncio.Future,
)
_SPLIT = {
    "fork": "every request runs in a fresh process that exits after it",
    "prefork": "each worker process has its own copy",
}
_MAX_RULES = 10_000


def process_model(scope: Scope) -> str | None:
    """The process model the server says it runs, or None (not qactuar)."""
    extension = (scope.get("extensions") or {}).get(PROCESS_MODEL_EXTENSION)
    if isinstance(extension, dict):
        model = extension.get("model")
        return model if isinstance(model, str) else None
    return None


def warn_if_state_is_split(target: Any, model: str) -> bool:
    """Log the warning if ``model`` splits state and ``target`` shows signs of keeping it."""
    split = _SPLIT.get(model)
    if split is None:
        return False
    findings = sorted(set(_findings(target)))
    if not findings:
        return False
    logger.warning(
        "A Tornado app served by the %r process model (%s): %s. Such state is not "
        "shared by the requests that follow: WebSocket broadcasts reach only the clients "
        "of one process, and a request waiting for another one may never be woken. This "
        "is what the bridge can see, not a proof either way (state in a plain dict or set "
        "goes unseen). Read the README's section 'State across requests and processes'; "
        "MODEL async keeps Tornado's sharing.",
        model,
        split,
        "; ".join(findings),
    )
    return True


def _name(obj: Any) -> str:
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _handlers(target: Any) -> Iterator[tuple[type[web.RequestHandler], dict[str, Any]]]:
    """Every RequestHandler class the rules of ``target`` route to, with its kwargs."""
    pending: list[tuple[Any, dict[str, Any]]] = [(target, {})]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_RULES:
        item, kwargs = pending.pop()
        if isinstance(item, type):
            if issubclass(item, web.RequestHandler):
                yield item, kwargs
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, web.Application):
            pending.append((item.wildcard_router, {}))
            pending.append((item.default_router, {}))
        elif isinstance(item, routing.RuleRouter):
            pending.extend((rule.target, rule.target_kwargs or {}) for rule in item.rules)


def _findings(target: Any) -> Iterator[str]:
    for handler, kwargs in _handlers(target):
        if issubclass(handler, WebSocketHandler):
            yield f"{_name(handler)} is a WebSocketHandler"
            continue
        coroutines = [
            name
            for name in ("get", "post", "put", "patch", "delete", "head", "options")
            if inspect.iscoroutinefunction(getattr(handler, name, None))
        ]
        if not coroutines:
            continue
        shared = _shared_waiter(handler, kwargs)
        if shared is not None:
            yield f"{_name(handler)}.{coroutines[0]} is a coroutine and {shared}"


def _shared_waiter(handler: type, kwargs: dict[str, Any]) -> str | None:
    """Where a waiting primitive shared by the handler's requests is, if one is."""
    places: list[tuple[str, dict[str, Any]]] = [("its initialize arguments", kwargs)]
    for klass in handler.__mro__:
        if klass.__module__.startswith("tornado."):
            continue
        places.append((f"class {klass.__qualname__}", dict(vars(klass))))
        module = sys.modules.get(klass.__module__)
        if module is not None:
            places.append((f"module {module.__name__}", dict(vars(module))))
    for where, namespace in places:
        for name, value in namespace.items():
            if name.startswith("__") or isinstance(value, type):
                continue
            if isinstance(value, _WAITERS):
                return f"a shared {type(value).__name__} is in {where} ({name})"
            attributes = getattr(value, "__dict__", None)
            if isinstance(attributes, dict) and not inspect.ismodule(value):
                for attribute, inner in attributes.items():
                    if isinstance(inner, _WAITERS):
                        return (
                            f"a shared {type(inner).__name__} is in {where} "
                            f"({name}.{attribute})"
                        )
    return None
