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

``--idle N`` first opens N keep-alive connections that then sit idle on the
server during the measurement: what a fork costs when the parent holds many
clients (each child inherits all their sockets).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from common import HERE, SERVER_CPUS, Series, free_port, measure, print_table, qactuar_command


def qactuar(model: str, port: int) -> list[str]:
    return qactuar_command(
        "apps:hello", port, model, "--max-processes", "4", "--keep-alive-timeout", "600"
    )


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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
