"""The same hello RequestHandler: Tornado's own HTTPServer against wrap() under ASGI servers.

    python benchmarks/tornado_bridge.py [--rounds 3] [--seconds 8] [--connections 100]

Servers, each one process pinned to BENCH_SERVER_CPUS (default core 0), wrk
on BENCH_LOAD_CPUS (default core 1), rounds alternating, medians printed:

- ``tornado``: ``HelloHandler`` in a Tornado Application on Tornado's HTTPServer;
- ``uvicorn + wrap()``: the same handler as ``wrap(HelloHandler)`` under
  uvicorn (httptools, uvloop);
- ``qactuar async + wrap()``: the same under qactuar's async model (when the
  qactuar CLI is importable).

This module is also the servers' app module (``tornado_bridge:asgi_app``)
and, with ``serve-tornado PORT``, Tornado's own server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import tornado.web
from common import qactuar_command, uvicorn_command

from qactuar.tornado_bridge import wrap


class HelloHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(b"Hello, world!")


asgi_app = wrap(HelloHandler)


async def _serve_tornado(port: int) -> None:
    app = tornado.web.Application([(r"/.*", HelloHandler)])
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


def commands(port: int) -> dict[str, list[str]]:
    py = sys.executable
    servers = {
        "tornado": [py, "tornado_bridge.py", "serve-tornado", str(port)],
        "uvicorn + wrap()": uvicorn_command("tornado_bridge:asgi_app", port, "--lifespan", "off"),
    }
    try:
        import qactuar.cli  # noqa: F401
    except ImportError:
        print("qactuar CLI not importable: qactuar async left out", file=sys.stderr)
    else:
        servers["qactuar async + wrap()"] = qactuar_command(
            "tornado_bridge:asgi_app", port, "async"
        )
    return servers


def main() -> None:
    from common import ensure_python_packages, print_table, run_rounds

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()
    ensure_python_packages("uvicorn", "uvloop", "httptools")
    series = run_rounds(commands, args.rounds, args.seconds, args.connections)
    names = list(series)
    print_table(
        f"Tornado hello handler, 1 process, {args.connections} connections, "
        f"median of {args.rounds}",
        [series[name] for name in names],
        "tornado",
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve-tornado":
        asyncio.run(_serve_tornado(int(sys.argv[2])))
    else:
        main()
