"""The fork model beside the fork ceiling and the async model, in one run.

    python benchmarks/fork_model.py [--rounds 3] [--seconds 8] [--connections 50]

Each round measures, on ``apps:hello`` with keep-alive connections: the fork
ceiling (``fork_ceiling.py`` pinned like the server), the event-loop floor
(``fork_ceiling.py --loop``: each child also creates an event loop, wraps a
socket in a transport and runs the app once, the least any asyncio server
does in a new child), qactuar's fork model, and qactuar's async model. It
prints medians and the fork model's share of the ceiling (goal: at least 0.6),
of the floor, and of the async model (the price of isolation). The fork
model runs with ``MAX_PROCESSES=4``: the children are CPU-bound on one pinned
core, and more of them at once only stretch the
latency tail (p99 1.3 s with 50 children, 0.26 s with 2-4) at the same
throughput.

Each round then measures the fork model on every core: ``WORKERS=1`` against
``WORKERS=2`` (fork-model parents under the prefork master, with
``REUSE_PORT``), unpinned: the servers and wrk share every CPU of the
machine, so on a 2-core machine wrk takes a share of the cores the second
parent would use. ``--no-parents`` skips it.

Each round also measures latency at low load: a request every 50 ms on a
new connection (``--sparse`` of them), to the fork model with FORK_AHEAD 0
and 2 and to the async model, pinned as above; and the fork model's
throughput with FORK_AHEAD 2 beside its own (the saturated case, where a
child forked ahead can only cost). ``--no-ahead`` skips both.

``--idle N`` first opens N keep-alive connections that then sit idle on the
server during the measurement: what a fork costs when the parent holds many
clients (each child inherits all their sockets).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

from common import (
    HERE,
    SERVER_CPUS,
    Series,
    free_port,
    measure,
    print_table,
    qactuar_command,
    start_server,
    stop_server,
)


def qactuar(model: str, port: int) -> list[str]:
    return qactuar_command(
        "apps:hello", port, model, "--max-processes", "4", "--keep-alive-timeout", "600"
    )


#: Every CPU, for the servers and wrk alike (the 1 against 2 parents runs).
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"


def parents(count: int, port: int) -> list[str]:
    """The fork model as ``count`` parents under the prefork master."""
    return [*qactuar("fork", port), "--workers", str(count), "--reuse-port"]


def sparse_latency(cmd: list[str], port: int, count: int) -> tuple[float, float]:
    """(p50, p90) ms of ``count`` requests, each on a new connection, 50 ms apart."""
    proc = start_server(cmd, port)
    times = []
    try:
        for _ in range(count + 5):  # (the first five: warm-up)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                began = time.perf_counter()
                sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                while sock.recv(4096):
                    pass
                times.append((time.perf_counter() - began) * 1000)
            time.sleep(0.05)
    finally:
        stop_server(proc)
    times = sorted(times[5:])
    return statistics.median(times), times[int(len(times) * 0.9)]


def fork_ceiling(seconds: int, *extra: str) -> float:
    out = subprocess.run(
        ["taskset", "-c", SERVER_CPUS, sys.executable, "fork_ceiling.py", str(seconds), *extra],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--no-parents", action="store_true",
                        help="skip the 1 against 2 parents runs")  # fmt: skip
    parser.add_argument("--no-ahead", action="store_true", help="skip the FORK_AHEAD runs")
    parser.add_argument("--sparse", type=int, default=100)
    args = parser.parse_args()
    sparse: dict[str, list[tuple[float, float]]] = {}
    lows = {"fork": ("fork",), "fork, FORK_AHEAD 2": ("fork", "--fork-ahead", "2"),
            "async": ("async",)}  # fmt: skip
    pooled = {n: Series(f"qactuar fork, {n} parent{'s' if n > 1 else ''}") for n in (1, 2)}
    ceilings: list[float] = []
    floors: list[float] = []
    leans: list[float] = []
    series = {"qactuar fork": Series("qactuar fork"), "qactuar async": Series("qactuar async")}
    if not args.no_ahead:
        series["qactuar fork, FORK_AHEAD 2"] = Series("qactuar fork, FORK_AHEAD 2")
    for round_no in range(args.rounds):
        ceilings.append(fork_ceiling(args.seconds))
        print(f"round {round_no + 1} fork ceiling: {ceilings[-1]:,.0f} forks/s", file=sys.stderr)
        floors.append(fork_ceiling(args.seconds, "--loop"))
        print(f"round {round_no + 1} event-loop floor: {floors[-1]:,.0f} forks/s", file=sys.stderr)
        leans.append(fork_ceiling(args.seconds, "--lean"))
        print(f"round {round_no + 1} lean fork floor: {leans[-1]:,.0f} forks/s", file=sys.stderr)
        for name in series:
            port = free_port()
            cmd = qactuar("fork" if "fork" in name else "async", port)
            if "AHEAD" in name:
                cmd += ["--fork-ahead", "2"]
            result = measure(cmd, port, args.seconds, args.connections, args.idle)
            series[name].results.append(result)
            print(f"round {round_no + 1} {name}: {result.rps:,.0f} req/s", file=sys.stderr)
        if not args.no_ahead:
            for label, how in lows.items():
                port = free_port()
                cmd = qactuar_command("apps:hello", port, how[0], *how[1:])
                sparse.setdefault(label, []).append(sparse_latency(cmd, port, args.sparse))
                p50, p90 = sparse[label][-1]
                print(f"round {round_no + 1} sparse {label}: p50 {p50:.2f} ms, p90 {p90:.2f} ms",
                      file=sys.stderr)  # fmt: skip
        if args.no_parents:
            continue
        for count in (1, 2) if round_no % 2 == 0 else (2, 1):
            port = free_port()
            result = measure(parents(count, port), port, args.seconds, args.connections,
                             cpus=(ALL_CPUS, ALL_CPUS))  # fmt: skip
            pooled[count].results.append(result)
            print(f"round {round_no + 1} {pooled[count].name}: {result.rps:,.0f} req/s",
                  file=sys.stderr)  # fmt: skip
    ceiling = statistics.median(ceilings)
    floor = statistics.median(floors)
    lean = statistics.median(leans)
    ordered = list(series.values())
    print_table(
        f"hello world, keep-alive, {args.connections} connections"
        + (f" (+{args.idle} idle)" if args.idle else "")
        + f", median of {args.rounds}",
        ordered,
        "qactuar async",
    )
    fork = series["qactuar fork"].rps
    print(f"\nfork ceiling: {ceiling:,.0f} forks/s")
    print(f"event-loop floor: {floor:,.0f} forks/s ({floor / ceiling:.2f} of the ceiling)")
    print(f"fork model / fork ceiling: {fork / ceiling:.2f}  (goal >= 0.6)")
    print(f"lean fork floor: {lean:,.0f} forks/s ({lean / ceiling:.2f} of the ceiling)")
    print(f"fork model / event-loop floor: {fork / floor:.2f}")
    print(f"fork model / lean fork floor: {fork / lean:.2f}  (goal >= 0.8)")
    print(f"fork model / async model: {fork / series['qactuar async'].rps:.3f}")
    if not args.no_ahead:
        print(f"\nlatency at low load: a request every 50 ms on a new connection, "
              f"{args.sparse} per round, median of {args.rounds} rounds")  # fmt: skip
        print("| server | p50 ms | p90 ms |")
        print("|---|---:|---:|")
        for label, got in sparse.items():
            p50 = statistics.median(a for a, _ in got)
            p90 = statistics.median(b for _, b in got)
            print(f"| qactuar {label} | {p50:.2f} | {p90:.2f} |")
    if not args.no_parents:
        print_table(
            f"the fork model on every core: WORKERS 1 against 2, unpinned (servers and wrk "
            f"share CPUs {ALL_CPUS}), median of {args.rounds}",
            list(pooled.values()),
            pooled[1].name,
        )
        for one in pooled.values():
            cpu = statistics.median(r.cpu_us_per_request for r in one.results)
            print(f"{one.name}: {cpu:,.0f} µs of server CPU per request")


if __name__ == "__main__":
    main()
