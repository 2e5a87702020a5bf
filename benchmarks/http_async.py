"""qactuar's async model against uvicorn (httptools + uvloop) and Granian, one process each.

    python benchmarks/http_async.py [--rounds 5] [--seconds 10] [--connections 100]

Every server serves ``benchmarks/apps.py:hello`` with access logs off, pinned
to BENCH_SERVER_CPUS (default core 0) while wrk runs on BENCH_LOAD_CPUS
(default core 1): uvicorn with httptools and uvloop, Granian with
``--interface asgi --workers 1 --http 1``. Rounds alternate between the
servers; medians are printed.
"""

from __future__ import annotations

import argparse
import sys

from common import (
    ensure_python_packages,
    print_table,
    qactuar_command,
    run_rounds,
    uvicorn_command,
)


def commands(port: int) -> dict[str, list[str]]:
    return {
        "qactuar async": qactuar_command("apps:hello", port, "async"),
        "uvicorn": uvicorn_command("apps:hello", port, "--lifespan", "off"),
        "granian": [
            sys.executable, "-m", "granian", "apps:hello", "--interface", "asgi", "--workers",
            "1", "--http", "1", "--no-ws", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning",
        ],  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()
    ensure_python_packages("uvicorn", "uvloop", "httptools", "granian")
    series = run_rounds(commands, args.rounds, args.seconds, args.connections)
    ordered = [series[n] for n in commands(0)]
    print_table(
        f"hello world, 1 process, {args.connections} connections, median of {args.rounds}",
        ordered,
        "uvicorn",
    )
    print(f"\nqactuar async / uvicorn: {ordered[0].rps / ordered[1].rps:.2f}x (goal: 1.3x)")
    print(f"qactuar async / granian: {ordered[0].rps / ordered[2].rps:.2f}x (goal: 1.1x)")


if __name__ == "__main__":
    main()
