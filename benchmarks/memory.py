"""Memory: idle RSS beside uvicorn, and RSS that stays flat over many requests.

    python benchmarks/memory.py [--rounds 3] [--requests 100000] [--parts idle,fork,prefork]

- ``idle``: the RSS of ``qactuar --model async`` and of uvicorn (httptools,
  uvloop) serving ``apps:hello``, each after one request, alternating rounds,
  medians (goal: qactuar no higher than uvicorn).
- ``fork``: the fork model's parent RSS as it serves ``--requests`` requests
  (wrk, 50 connections, in slices), sampled after each slice; the growth from
  the first sample (after 1,000 requests of warm-up) to the last (goal:
  within 2 MiB).
- ``prefork``: the same for each worker of ``--workers 2`` (RSS of every
  worker summed, divided by their number; goal: flat).

Each server is pinned to BENCH_SERVER_CPUS and wrk to BENCH_LOAD_CPUS, as in
the other benchmarks.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from common import (
    children,
    ensure_python_packages,
    free_port,
    process_rss_kib,
    qactuar_command,
    run_wrk,
    start_server,
    stop_server,
    uvicorn_command,
)

APP = "apps:hello"


def idle(rounds: int) -> None:
    ensure_python_packages("uvicorn", "uvloop", "httptools")
    servers = {
        "qactuar async": lambda port: qactuar_command(APP, port, "async"),
        "uvicorn": lambda port: uvicorn_command(APP, port, "--lifespan", "off"),
    }
    found: dict[str, list[int]] = {name: [] for name in servers}
    for round_no in range(rounds):
        names = list(servers)[round_no % 2 :] + list(servers)[: round_no % 2]
        for name in names:
            port = free_port()
            proc = start_server(servers[name](port), port)
            try:
                run_wrk(port, 1, 1)  # one client, one second: every path once
                time.sleep(0.5)
                found[name].append(process_rss_kib(proc.pid))
            finally:
                stop_server(proc)
    print(f"\nidle RSS after 1 s of one client, median of {rounds}")
    print("| server | RSS MiB |")
    print("|---|---:|")
    for name, values in found.items():
        print(f"| {name} | {statistics.median(values) / 1024:.1f} |")


def _flat(name: str, cmd: list[str], port: int, requests: int,
          measured: Callable[[int], tuple[int, int]]) -> None:
    """Serve ``requests`` in wrk slices; ``measured(server pid)`` gives (KiB, processes)."""
    proc = start_server(cmd, port)
    samples: list[tuple[int, float]] = []
    try:
        served = run_wrk(port, 1, 50).requests  # warm-up
        samples.append((served, measured(proc.pid)[0] / 1024))
        while served < requests:
            result = run_wrk(port, 5, 50)
            served += result.requests
            kib, processes = measured(proc.pid)
            samples.append((served, kib / 1024))
            print(f"  {name}: {served:,} requests, {kib / 1024:.1f} MiB", flush=True)
    finally:
        stop_server(proc)
    first, last = samples[0][1], samples[-1][1]
    peak = max(mib for _, mib in samples)
    print(f"| {name} | {samples[-1][0]:,} | {first:.2f} | {last:.2f} | {peak:.2f} | "
          f"{last - first:+.2f} |")


def flat(model: str, requests: int) -> None:
    port = free_port()
    if model == "fork":
        cmd = qactuar_command(APP, port, "fork", "--max-processes", "4",
                              "--keep-alive-timeout", "600")

        def measured(pid: int) -> tuple[int, int]:
            return process_rss_kib(pid), 1
    else:
        cmd = qactuar_command(APP, port, "prefork", "--workers", "2")

        def measured(pid: int) -> tuple[int, int]:
            workers = children(pid)
            return sum(process_rss_kib(w) for w in workers) // max(1, len(workers)), len(workers)
    print(f"\nRSS over {requests:,} requests ({model}: "
          f"{'the parent' if model == 'fork' else 'one worker, averaged over the pool'})")
    print("| process | requests | first MiB | last MiB | peak MiB | growth MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    _flat(f"{model} {'parent' if model == 'fork' else 'worker'}", cmd, port, requests, measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--parts", default="idle,fork,prefork")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if "idle" in parts:
        idle(args.rounds)
    for model in ("fork", "prefork"):
        if model in parts:
            flat(model, args.requests)


if __name__ == "__main__":
    main()
