"""What a fork-model child runs, from the moment the zygote's ``fork()`` returns 0 to ``os._exit``.

The child was forked by the zygote (``zygote.py``), which holds the apps
and the lifespan state but no connection: the serving parent keeps the
client's connection and relays the request's ASGI messages over a
socketpair (``relay.py``). The child resets what the zygote set up for
itself (signals), freezes the objects it inherited out of the collector's
reach, runs the application on a fresh event loop with its messages
relayed over its end of the socketpair, and exits.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (no stubs)
import asyncio
import gc
import logging
import os
import socket
from typing import TYPE_CHECKING, NoReturn

from .relay import serve_in_child

if TYPE_CHECKING:
    from .fork import ForkServer

__all__ = ["serve_spawned"]

child_logger = logging.getLogger("qt_child")


def serve_spawned(server: ForkServer, sock: socket.socket) -> NoReturn:
    """The child's life: the request relayed over ``sock``, then exit."""
    code = 1
    try:
        # A child touches as little of the inherited memory as it can: every
        # page it writes is copied. Hence ``_signal`` (the ``signal``
        # module's wrappers convert to and from enums).
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
        # SIGINT and SIGTERM stay ignored (as the zygote set them): a Ctrl-C
        # or a service manager's SIGTERM reaches the whole process group, and
        # the parent decides when a child must go (SIGKILL).
        gc.freeze()
        loop = server.loop_factory()
        # (the policy's loop too: else code that asks the policy would get
        # the parent's, inherited; it costs the child some 35 pages)
        asyncio.set_event_loop(loop)
        state = server.state
        extensions = (state.http_extensions, state.ws_extensions)
        loop.run_until_complete(serve_in_child(server.app, sock, state.lifespan_state, extensions))
        code = 0
    except BaseException:
        child_logger.exception("child %d failed", os.getpid())
    finally:
        os._exit(code)
