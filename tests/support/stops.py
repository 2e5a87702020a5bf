"""A request sent on a kept-alive connection just as a graceful stop begins.

A graceful stop closes an idle keep-alive connection once it has been quiet
for ``IDLE_GRACE`` (0.25 s): under load its next request is usually on its
way, and that request is answered, with ``Connection: close``. Whether the
test's request left in time is the test machine's business, not the
server's: a client stalled past the grace window is told apart from a server
that closed too soon, and the test tries again instead of flaking or
passing by a refusal.
"""

from __future__ import annotations

import signal
import time

from qactuar.server.protocol import IDLE_GRACE

from .processes import Spawned
from .raw import RawClient, RawResponse, encode_request

#: What a process model logs when SIGTERM starts its graceful stop.
STOP_LINE = "SIGTERM: stopping gracefully"


def request_as_the_stop_begins(spawned: Spawned, conn: RawClient, path: str) -> RawResponse | None:
    """SIGTERM ``spawned``, wait for its stop line, send GET ``path`` on ``conn``.

    The response; None if the request left more than ``IDLE_GRACE`` after
    the signal and the server closed the connection first (the client was
    late: try again). A close although the request was in time fails.
    """
    began = time.monotonic()
    spawned.signal(signal.SIGTERM)
    spawned.wait_for_log(STOP_LINE, timeout=10)  # the answer then says "connection: close"
    conn.send(encode_request(path))
    late = time.monotonic() - began >= IDLE_GRACE
    try:
        return conn.response()
    except EOFError:
        if late:
            return None
        raise
