"""Detecting Tornado objects bound to an event loop the server does not run.

Tornado objects made at import time (``AsyncHTTPClient()``,
``PeriodicCallback(...).start()``, anything calling ``IOLoop.current()``)
bind to the event loop current at that moment.  The ASGI server then runs
its own loop (and a forked child a fresh one), so those objects never run
or fail there.  What can be seen from outside is the IOLoop they created:
one registered for an asyncio loop that is neither the server's nor running
nor closed.
"""

from __future__ import annotations

import asyncio
import warnings

from tornado.ioloop import IOLoop


def stranded_ioloops() -> list[IOLoop]:
    """IOLoops whose asyncio loop is idle, open, and not the running one."""
    running = asyncio.get_running_loop()
    registry: dict[asyncio.AbstractEventLoop, IOLoop] = getattr(IOLoop, "_ioloop_for_asyncio", {})
    return [
        ioloop
        for loop, ioloop in list(registry.items())
        if loop is not running and not loop.is_running() and not loop.is_closed()
    ]


def warn_about_stranded_ioloops(category: type[Warning]) -> None:
    stranded = stranded_ioloops()
    if stranded:
        warnings.warn(
            f"{len(stranded)} Tornado IOLoop(s) were made on an event loop that the ASGI "
            "server does not run (at import time, or before a fork?): Tornado objects bound "
            "to them (AsyncHTTPClient, PeriodicCallback, IOLoop.current() kept in a "
            "variable...) will not work in handlers. Create them inside handlers, or call "
            "IOLoop.current() at request time.",
            category,
            stacklevel=2,
        )
