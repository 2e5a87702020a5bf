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


def serve_spawned(server: ForkServer, sock: socket.socket, ahead: bool = False) -> NoReturn:
    """The child's life: the request relayed over ``sock``, then exit.

    ``ahead``: a child forked ahead of demand (FORK_AHEAD): ``sock`` is its
    channel from the zygote, on which the request's socketpair end comes
    once there is a request; everything before (signals, the collector, the
    event loop) is done while it waits. The end of the channel without one
    (the zygote retired it) is a quiet exit.
    """
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
        if ahead:
            loop.run_until_complete(asyncio.sleep(0))  # (its first start costs too)
            sock = _wait_for_request(sock)
        state = server.state
        extensions = (state.http_extensions, state.ws_extensions)
        loop.run_until_complete(serve_in_child(server.app, sock, state.lifespan_state, extensions))
        code = 0
    except BaseException:
        child_logger.exception("child %d failed", os.getpid())
    finally:
        os._exit(code)


def _wait_for_request(channel: socket.socket) -> socket.socket:
    """A child forked ahead: its request's socketpair end, when the zygote sends it."""
    _, fds, _, _ = socket.recv_fds(channel, 16, 1)
    channel.close()
    if not fds:
        os._exit(0)  # retired unused
    return socket.socket(fileno=fds[0])
