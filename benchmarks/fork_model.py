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

``--idle N`` first opens N keep-alive connections that then sit idle on the
server during the measurement: what a fork costs when the parent holds many
clients (each child inherits all their sockets).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from common import HERE, SERVER_CPUS, Series, free_port, measure, print_table, qactuar_command


def qactuar(model: str, port: int) -> list[str]:
    return qactuar_command(
        "apps:hello", port, model, "--max-processes", "4", "--keep-alive-timeout", "600"
    )


#: Every CPU, for the servers and wrk alike (the 1 against 2 parents runs).
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"


def parents(count: int, port: int) -> list[str]:
    """The fork model as ``count`` parents under the prefork master."""
    return [*qactuar("fork", port), "--workers", str(count), "--reuse-port"]


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
    args = parser.parse_args()
    pooled = {n: Series(f"qactuar fork, {n} parent{'s' if n > 1 else ''}") for n in (1, 2)}
    ceilings: list[float] = []
    floors: list[float] = []
    leans: list[float] = []
    series = {"qactuar fork": Series("qactuar fork"), "qactuar async": Series("qactuar async")}
    for round_no in range(args.rounds):
        ceilings.append(fork_ceiling(args.seconds))
        print(f"round {round_no + 1} fork ceiling: {ceilings[-1]:,.0f} forks/s", file=sys.stderr)
        floors.append(fork_ceiling(args.seconds, "--loop"))
        print(f"round {round_no + 1} event-loop floor: {floors[-1]:,.0f} forks/s", file=sys.stderr)
        leans.append(fork_ceiling(args.seconds, "--lean"))
        print(f"round {round_no + 1} lean fork floor: {leans[-1]:,.0f} forks/s", file=sys.stderr)
        for name, model in (("qactuar fork", "fork"), ("qactuar async", "async")):
            port = free_port()
            result = measure(qactuar(model, port), port, args.seconds, args.connections, args.idle)
            series[name].results.append(result)
            print(f"round {round_no + 1} {name}: {result.rps:,.0f} req/s", file=sys.stderr)
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
