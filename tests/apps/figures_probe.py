"""``python -m figures_probe <qactuar args>``: qactuar that writes its admin figures on SIGPWR.

The admin socket is not part of these tests: on SIGPWR the process that got
it writes, as JSON, what its model object says (``totals()`` and
``admin_counters()`` of the prefork ``Arbiter``, the ``ForkServer``, or the
async ``Server``) to ``$FIGURES_DIR/figures.json`` (written whole, then
renamed into place). Only the public methods are called; nothing is patched
but the constructors, to learn which objects exist.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from qactuar.admin.figures import Totals
from qactuar.admin.serve import AdminServer
from qactuar.cli import main
from qactuar.models.arbiter import Arbiter
from qactuar.models.fork import ForkServer
from qactuar.server import Server

PROBE = signal.SIGPWR
_made: list[Any] = []


def _remember(cls: Any) -> None:
    init = cls.__init__

    def remembering(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _made.append(self)

    cls.__init__ = remembering


def as_json(totals: Totals) -> dict[str, Any]:
    return {
        "in_flight": totals.in_flight,
        "http_connections": totals.http_connections,
        "websocket_connections": totals.websocket_connections,
        "bytes_in": totals.bytes_in,
        "bytes_out": totals.bytes_out,
        "routes": {
            name: {
                "requests": {f"{m} {c}": n for (m, c), n in route.requests.items()},
                "buckets": route.buckets,
                "latency_sum": route.latency_sum,
            }
            for name, route in totals.routes.items()
        },
    }


def _probe(signum: int, frame: object) -> None:
    mine = [obj for obj in _made if not isinstance(obj, AdminServer)  # (the admin socket's)
            and (not isinstance(obj, Arbiter) or obj.pid == os.getpid())]
    model = next((o for o in mine if isinstance(o, Arbiter | ForkServer)), None) or mine[-1]
    report = as_json(model.totals())
    if isinstance(model, Arbiter | ForkServer):
        report["counters"] = model.admin_counters()
    path = os.path.join(os.environ["FIGURES_DIR"], "figures.json")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    os.rename(path + ".tmp", path)


if __name__ == "__main__":
    _remember(Server)
    _remember(Arbiter)
    signal.signal(PROBE, _probe)
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
