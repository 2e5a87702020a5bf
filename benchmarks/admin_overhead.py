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

The last run (2026-12-05 02:56-03:04 UTC, the 2-core development VM, nothing
else of ours running, load average 1.7 at the start), ``--rounds 9 --seconds 6``:

| model | figures off req/s | on req/s | on/off | CPU us/req off | on | cost |
|---|---:|---:|---:|---:|---:|---:|
| async | 44,033 | 42,686 | 0.969 | 22.6 | 23.4 | +3.1% |
| fork | 184 | 165 | 0.895 | 5420.8 | 6056.6 | +10.5% |
| prefork | 43,833 | 41,747 | 0.952 | n/a | n/a | +4.8% |

timeit: ``record`` 240 ns (one app) / 446 ns (3 routes). The goal (under 3%) is
not met there.

Later the same day the fork model changed (a zygote forks every child; the
parent serves every connection and records every request, children record
nothing). ``--models fork --rounds 7``: +8.1% while the zygote was forked
after the admin app's import (1.8 MiB more anonymous memory in it, so every
fork and exit cost more); with the zygote forked first, ``--rounds 9
--seconds 5``: on 192, off 177 req/s (1.08: noise, the off rounds alone
spread from 159 to 212), and children's page faults equal on and off.

What the cost is, measured with ``perf stat`` over the whole process tree
(CPU and page faults per request, medians of 3-4 alternating rounds):
- async and prefork: figures on add about 1.1 us of CPU per request (of
  23.2), where ``timeit`` puts ``record`` and its call at about 0.35 us; with
  ``record`` replaced by a function that does nothing, on and off are equal.
  So the whole cost is ``record`` in place: the memory it touches (its lists,
  the int and float objects each addition makes) is out of the cache by the
  time a request ends. Two rounds of cuts brought it from +1.7 to +1.1 us.
- fork: a child with figures on takes about 85 more page faults than one
  with them off (1,248 -> 1,337 per request, including the parent's share):
  every page of the parent's memory a child writes is copied, and a child
  writes a page as soon as it touches any object on it (a reference count).
  About 36 of them are the child's own figures (measured alone in a forked
  child: creating its tally and recording one request touch about 35 pages;
  the parent's ``Recorder``, cleared, filled and published, had touched about
  50); the other ~50 appear with the admin socket on even when the child
  records nothing, spread over the allocator (``_int_malloc``, object free
  lists, ``insertdict``): the parent's heap is laid out differently, and a
  child's allocations land on more of its pages. Importing the admin modules
  alone changes neither. The cure is the one issue #14 plans for the fork
  model anyway: children forked from a lean process that never serves the
  admin socket.

The levers so far, each measured in its commit: a lone app is not wrapped in
a Router until the first ``POST /apps`` (700 ns per request); psutil and
prometheus_client are imported at the first look and psutil read only while
someone looks (no sampler thread in a server nobody watches); the fork
parent's spare slots are a counter, not 2.4 MiB of ints; a fork child writes
what it answers straight into its slot's block (``ChildTally``) instead of
clearing, filling and publishing the parent's ``Recorder`` (fork on/off 0.918
-> 0.969 in a 7-round A/B); one count per request (a cell per route, method,
status class and latency bucket) instead of two (record 320 -> 250 ns).

Before the load runs, ``timeit`` measures ``Recorder.record``, the whole
per-request cost in every model (since 2026-12-05 the fork model's parent
serves every connection and records every request itself; its children
record nothing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable

from common import ROOT, qactuar_command, run_rounds

sys.path.insert(0, ROOT)

from qactuar.admin.figures import Recorder  # noqa: E402  (the repository, as the servers run it)

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
    print("per request (timeit, best of 5):")
    print(f"  Recorder.record, one app:            {single * 1e9:6.0f} ns")
    print(f"  Recorder.record, 3 APPS routes:      {routed * 1e9:6.0f} ns")


def _cpu(us: float, model: str) -> str:
    return f"{us:.1f}" if us > 0 else "n/a"


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
