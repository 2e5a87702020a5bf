"""qactuar's prefork model beside uvicorn, gunicorn and granian, 2 workers each.

    python benchmarks/prefork.py [--rounds 3] [--seconds 5] [--connections 64]

Every server runs 2 worker processes serving ``apps:hello`` with keep-alive
connections: ``qactuar --model prefork --workers 2``, ``uvicorn --workers 2``
(httptools + uvloop), ``gunicorn -k uvicorn_worker.UvicornWorker -w 2`` and
``granian --interface asgi --workers 2``, access logs off. Each round runs
them all in turn (the order rotates every round, so that a noisy stretch on
a shared machine does not always hit the same server); the table holds
medians. "RSS/worker" is the mean resident memory of the server's worker
processes (the children of the process started), measured after the load.

Fairness, and its limits: with 2 workers on a 2-core machine nothing is
pinned. The workers and wrk (one thread) share both cores, so wrk takes CPU
from the servers, and other work on the machine moves the numbers between
rounds; only the ratios within one run mean much. Run it on an idle machine
and set ``BENCH_SERVER_CPUS`` / ``BENCH_LOAD_CPUS`` to separate cores where
there are more than two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("BENCH_SERVER_CPUS", f"0-{(os.cpu_count() or 1) - 1}")
os.environ.setdefault("BENCH_LOAD_CPUS", os.environ["BENCH_SERVER_CPUS"])

from common import (  # noqa: E402  (the CPU sets above are read when common is imported)
    Result,
    ensure_python_packages,
    print_table,
    qactuar_command,
    run_rounds,
    run_wrk,
    start_server,
    stop_server,
    uvicorn_command,
)

WORKERS = 2
APP = "apps:hello"


def commands(port: int) -> dict[str, list[str]]:
    host, workers, py = "127.0.0.1", str(WORKERS), sys.executable
    return {
        "qactuar prefork": qactuar_command(APP, port, "prefork", "--workers", workers),
        "uvicorn": uvicorn_command(APP, port, "--workers", workers),
        "gunicorn + UvicornWorker": [
            py,
            "-m",
            "gunicorn",
            APP,
            "-k",
            "uvicorn_worker.UvicornWorker",
            "-w",
            workers,
            "-b",
            f"{host}:{port}",
            "--log-level",
            "warning",
        ],
        "granian": [
            py,
            "-m",
            "granian",
            APP,
            "--interface",
            "asgi",
            "--workers",
            workers,
            "--http",
            "1",
            "--no-ws",
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    }


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def worker_rss_kib(pid: int) -> int:
    """Mean RSS of the worker processes: the largest ``WORKERS`` children."""
    sizes = sorted((_rss(child) for child in _children(pid)), reverse=True)[:WORKERS]
    return int(statistics.mean(sizes)) if sizes else _rss(pid)


def measure(cmd: list[str], port: int, seconds: int, connections: int) -> Result:
    proc = start_server(cmd, port)
    try:
        run_wrk(port, 1, connections)  # warm-up
        result = run_wrk(port, seconds, connections)
        result.rss_kib = worker_rss_kib(proc.pid)
        return result
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    ensure_python_packages(
        "uvicorn", "httptools", "uvloop", "gunicorn", "uvicorn-worker", "granian"
    )
    series = run_rounds(commands, args.rounds, args.seconds, args.connections, measure)
    names = list(series)
    print_table(
        f"hello world, {WORKERS} workers each, keep-alive, {args.connections} connections, "
        f"median of {args.rounds} rounds x {args.seconds}s (RSS MiB: per worker)",
        [series[name] for name in names],
        "uvicorn",
        ", unpinned: servers and wrk share the cores",
    )
    ours = series["qactuar prefork"].rps
    print()
    for name in names[1:]:
        print(f"qactuar prefork / {name}: {ours / series[name].rps:.2f}x")
    print("goal: >= 1.00x uvicorn with the same number of workers")


if __name__ == "__main__":
    main()
