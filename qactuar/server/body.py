"""BODY_TIMEOUT: a request body that stops coming (nginx's ``client_body_timeout``).

The timeout runs between two reads of the body, and only while the
connection is reading: when reading pauses because the application leaves
its body unread (``READ_HIGH_WATER``), because a pipelined request waits
for the one before it (``pacing.py``), or because a fork-model parent hands
the connection to a child, the wait is not the client's fault and no
deadline runs. It is one more use of the connection's ``deadline``, which
the server's sweep compares with its coarse clock (``ServerState.sweep``):
``pacing.feed`` sets it after each read of a body, ``pause_reading`` clears
it, ``resume_reading`` sets it afresh.

It does not run while the client waits for a ``100 Continue`` the
application has not asked for yet, and each ``receive()`` that finds no body
re-arms it: it counts from the later of the client's last byte and the
application's last wish for more.

When it passes: ``408 Request Timeout`` and a close if the stalled body is
the current request's and no byte of its response went out, else just the
close;
every request of the connection still waiting for its body or its turn
hears ``http.disconnect`` from ``receive()``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..asgi.cycle import HTTPCycle
    from .protocol import HTTPProtocol

__all__ = ["body_timed_out"]

logger = logging.getLogger("qt_server")


def body_timed_out(conn: HTTPProtocol, cycle: HTTPCycle) -> None:
    """``cycle``'s body, arriving on ``conn``, got no byte for BODY_TIMEOUT."""
    conn.deadline = 0.0
    current = conn.cycle
    waiting = [c for c in (current, *conn.pipeline, cycle) if c is not None]
    if current is cycle and not cycle.started:  # the 408 answers this request
        conn.fail(408, "Request body timeout")  # logged as a bad request
    else:
        logger.info("Request body from %s stalled past BODY_TIMEOUT (%gs): connection closed",
                    conn.client, conn.state.body_timeout)
        conn.fail(0, "Request body timeout")
    for stalled in waiting:
        stalled.disconnect()
