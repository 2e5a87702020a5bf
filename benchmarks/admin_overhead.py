"""What the admin figures cost: each model's hello-world throughput with ADMIN_ENABLED on and off.

    python benchmarks/admin_overhead.py [--rounds 5] [--seconds 8] [--connections 50]
                                        [--models async,fork,prefork]

Every round serves ``apps:hello`` with each model twice, admin figures off
and on (``QACTUAR_ADMIN_ENABLED``, the admin socket on a free port), with
access logs off, pinned like the other benchmarks (server on
BENCH_SERVER_CPUS, wrk on BENCH_LOAD_CPUS); the order rotates every round so
that drift in a shared machine's load falls on all alike. The fork model
runs as ``fork_model.py`` runs it (``MAX_PROCESSES=4``, long keep-alive),
prefork with 2 workers. Printed: medians of requests/s and of server CPU per
request, and the cost of the figures (goal: under 3%).

The last run (2026-12-05 00:51-00:55 UTC, the 2-core development VM shared
with four other engineers' test runs, load average 1.46 at the start and 2.41
at the end; the model tests ran beside it for its first 1.5 minutes), after
the levers below, ``--rounds 5 --seconds 6``:

| model | figures off req/s | on req/s | on/off | CPU us/req off | on | cost |
|---|---:|---:|---:|---:|---:|---:|
| async | 37,675 | 37,667 | 1.000 | 22.8 | 23.7 | +0.0% |
| fork | 198 | 170 | 0.861 | 4966.3 | 5790.5 | +13.9% |
| prefork | 36,160 | 33,129 | 0.916 | n/a | n/a | +8.4% |

timeit: ``record`` 323 ns (one app) / 468 ns (3 routes); fork child's
clear+record+publish 4.1 us, the parent's fold at reap 2.7 us. Round by
round, async on and off cross (on: 19.7k-43.2k, off: 25.1k-41.8k): under 3%.
fork and prefork are still above it: in the quiet rounds prefork lost 6-7%
(44.5k/41.6k, 43.6k/41.0k) and fork 5-13%, where nothing measured per request
adds up to that (py-spy of the async model: the figures' own code 1.2% of its
samples; a fork child's and parent's figures work 7 us of ~5 ms): not found yet.

The levers behind it (each measured in its commit): a lone app is no longer
wrapped in a Router until the first ``POST /apps`` (700 ns, 2.8% of async's
CPU per request; py-spy: 2.1% self time in ``Router.__call__``, now none);
psutil and prometheus_client are imported at the first look and psutil is
read only while someone looks (no sampler thread in a server nobody watches:
fork+exit+wait of the parent 1,540 us against 1,660 us with them and 1,740 us
with the thread); the fork parent's 65,532 spare slots are a counter, not a
list of ints (2.4 MiB of its heap: fork+exit+wait 1,550 against 1,660 us).

Before the load runs, ``timeit`` measures the pieces on the request path:
``Recorder.record`` (the whole per-request cost in async and prefork), and a
fork child's hand-over of its counts (``publish_counts`` as it exits,
``fold_into`` in the parent as it reaps it).
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import sys
import timeit
from collections.abc import Callable

from common import ROOT, qactuar_command, run_rounds

sys.path.insert(0, ROOT)

from qactuar.admin.figures import Recorder  # noqa: E402  (the repository, as the servers run it)
from qactuar.admin.figures_shm import ChildBlock, ChildTally  # noqa: E402

APP = "apps:hello"
MODEL_ARGS = {
    "async": (),
    "fork": ("--max-processes", "4", "--keep-alive-timeout", "600"),
    "prefork": ("--workers", "2"),
}
ADMIN_ON = ("env", "QACTUAR_ADMIN_ENABLED=true", "QACTUAR_ADMIN_PORT=0")


def commands_for(models: list[str]) -> Callable[[int], dict[str, list[str]]]:
    def commands(port: int) -> dict[str, list[str]]:
        table = {}
        for model in models:
            command = qactuar_command(APP, port, model, *MODEL_ARGS[model])
            table[f"{model} off"] = command
            table[f"{model} on"] = [*ADMIN_ON, *command]
        return table

    return commands


def _per_call(call: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of 5 timeit runs, less the cost of calling a lambda."""
    empty = min(timeit.repeat(lambda: None, number=number, repeat=5))
    return (min(timeit.repeat(call, number=number, repeat=5)) - empty) / number


def micro() -> None:
    one = Recorder(["/"])
    three = Recorder(["/api", "/blog", "/"])
    n = 200_000
    single = _per_call(lambda: one.record("/x", "GET", 200, 0.0012, 0, 13), n)
    routed = _per_call(lambda: three.record("/blog/x", "GET", 200, 0.0012, 0, 13), n)
    block = ChildBlock(mmap.mmap(-1, 4096), 0, 4096)
    parent = Recorder(["/"])

    def child() -> None:
        ChildTally(parent, block).record("/x", "GET", 200, 0.0012, 0, 13)

    def reap() -> None:
        child()
        block.fold_into(parent)

    m = 20_000
    exiting = _per_call(child, m)
    reaping = _per_call(reap, m) - exiting
    print("per request (timeit, best of 5):")
    print(f"  Recorder.record, one app:            {single * 1e9:6.0f} ns")
    print(f"  Recorder.record, 3 APPS routes:      {routed * 1e9:6.0f} ns")
    print(f"  fork child, its tally and record:    {exiting * 1e6:6.2f} us")
    print(f"  fork parent, fold_into at reap:      {reaping * 1e6:6.2f} us")


def _cpu(us: float, model: str) -> str:
    # prefork: the master's own CPU only (its workers live through the run)
    return f"{us:.1f}" if us > 0 and model != "prefork" else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--models", default="async,fork,prefork")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    micro()
    series = run_rounds(commands_for(models), args.rounds, args.seconds, args.connections)
    print(
        f"\nhello world, {args.connections} connections, median of {args.rounds} rounds x "
        f"{args.seconds}s"
    )
    print("| model | figures off req/s | on req/s | on/off | CPU us/req off | on | cost |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model in models:
        off, on = series[f"{model} off"], series[f"{model} on"]
        cpu_off = statistics.median(r.cpu_us_per_request for r in off.results)
        cpu_on = statistics.median(r.cpu_us_per_request for r in on.results)
        ratio = on.rps / off.rps
        print(
            f"| {model} | {off.rps:,.0f} | {on.rps:,.0f} | {ratio:.3f} | {_cpu(cpu_off, model)} | "
            f"{_cpu(cpu_on, model)} | {(1 - ratio) * 100:+.1f}% |"
        )
    print("(CPU: the server process and the children it reaped; n/a for prefork, whose")
    print(" workers live through the run. Compare the spread of one configuration across")
    print(" rounds, on stderr, with the difference: on a shared machine it is often larger.)")
    print("goal: figures on costs under 3% of throughput")


if __name__ == "__main__":
    main()
