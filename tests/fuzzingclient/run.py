"""Run the cases against a server and count the verdicts per category.

``python -m fuzzingclient`` (with ``PYTHONPATH=tests``; ``make autobahn``)
starts ``qactuar ws:app`` in each model with the limits chapter 9 needs
(``WS_MAX_MESSAGE_BYTES`` 16 MiB, keep-alive pings off so no ping of ours
shows among the events), runs the chosen cases against ``/echo`` one
connection each, in order, as Autobahn's fuzzing client does, and prints one
table per model. ``--url`` runs them against a server already running.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from . import (
    big,  # noqa: F401  (registers chapters 9-13)
    text_close,  # noqa: F401  (registers chapters 6-7)
)
from .basic import CASES
from .case import FAILED, FAILED_BY_CLIENT, Case, Timing
from .wire import Session

VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
MODELS = ["async", "fork", "prefork"]
SERVER_ENV = {"QACTUAR_WS_MAX_MESSAGE_BYTES": str(16 * 1024 * 1024),
              "QACTUAR_WS_PING_INTERVAL": "0"}


@dataclass
class Result:
    id: str
    verdict: str
    behavior: str
    behavior_close: str
    result: str
    result_close: str
    remote_close_code: int | None
    violation: str | None
    ms: int


def key(ident: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ident.split("."))


def select(patterns: Iterable[str], exclude: Iterable[str] = ()) -> list[type[Case]]:
    """Cases whose id matches a pattern (``fnmatch``: ``"6.*"``, ``"12.1.1"``), in id order."""
    pats, skip = list(patterns), list(exclude)
    chosen = [c for c in CASES if any(fnmatch.fnmatchcase(c.id, p) for p in pats)
              and not any(fnmatch.fnmatchcase(c.id, p) for p in skip)]
    return sorted(chosen, key=lambda c: key(c.id))


def run_case(cls: type[Case], host: str, port: int, timing: Timing) -> Result:
    session = Session(host, port, cls.path, offers=list(cls.offers),
                      open_timeout=5.0 * timing.slack, slack=timing.slack)
    case = cls(session, timing)
    waitsecs = float(getattr(cls, "waitsecs", 0))
    limit = max(cls.limit, waitsecs * timing.slack + 10)
    start = time.monotonic()
    try:
        opened = session.connect()
    except OSError:
        opened = False
    if opened:
        try:
            session.run(case, limit)
        except Exception as exc:  # a bug of the client's: the case fails, the run goes on
            session.violation = f"client error: {exc!r}"
            session.fail("client error")
    else:
        session.fail("opening handshake failed")
    case.on_lost()
    return Result(cls.id, case.verdict(), case.behavior, case.behavior_close, case.result,
                  case.result_close, session.remote_close_code, session.violation,
                  int((time.monotonic() - start) * 1000))


def run_all(cases: list[type[Case]], host: str, port: int, timing: Timing,
            progress: bool = False) -> list[Result]:
    results = []
    for cls in cases:
        result = run_case(cls, host, port, timing)
        results.append(result)
        if progress and (result.verdict == FAILED or result.ms > 5000):
            print(f"  {result.id}: {result.verdict} {result.behavior}/{result.behavior_close}"
                  f" {result.ms} ms {result.result} {result.result_close}"
                  f" {result.violation or ''}", file=sys.stderr, flush=True)
    return results


def counts(results: list[Result]) -> dict[str, Counter[str]]:
    """Per chapter (``"1"``, ``"6"``, ...): how many cases got each verdict."""
    table: dict[str, Counter[str]] = {}
    for r in results:
        table.setdefault(r.id.split(".")[0], Counter())[r.verdict] += 1
        if r.behavior_close == FAILED_BY_CLIENT:
            table[r.id.split(".")[0]]["closed by client"] += 1
    return table


def markdown(tables: dict[str, dict[str, Counter[str]]]) -> str:
    lines = ["| model | chapter | cases | " + " | ".join(VERDICTS) + " |",
             "|---|---|---|" + "---|" * len(VERDICTS)]
    for model, table in tables.items():
        for chapter in sorted(table, key=int):
            row = table[chapter]
            total = sum(row[v] for v in VERDICTS)
            lines.append(f"| {model} | {chapter} | {total} | "
                         + " | ".join(str(row[v]) for v in VERDICTS) + " |")
    return "\n".join(lines)


@contextmanager
def served(model: str, log_dir: str) -> Iterator[int]:
    """``qactuar ws:app`` in ``model`` with the limits the cases need; yields its port."""
    from support import start_qactuar  # tests/support (PYTHONPATH=tests)

    extra = ["--workers", "2"] if model == "prefork" else []
    spawned = start_qactuar("ws:app", "--model", model, *extra,
                            log_path=os.path.join(log_dir, f"qactuar-{model}.log"),
                            env=SERVER_ENV)
    try:
        yield spawned.port
    finally:
        spawned.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzzingclient", description=__doc__)
    parser.add_argument("--cases", default="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*")
    parser.add_argument("--exclude", default="")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--url", help="host:port of a running server (no models started)")
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--slack", type=float, default=1.0)
    parser.add_argument("--json", help="write every result to this file")
    parser.add_argument("--logs", help="keep the servers' logs in this folder")
    args = parser.parse_args(argv)
    cases = select(args.cases.split(","), filter(None, args.exclude.split(",")))
    timing = Timing(args.pause, args.slack)
    print(f"{len(cases)} cases; test data: {big.DATA_DIR or 'generated stand-ins'}",
          file=sys.stderr)
    tables: dict[str, dict[str, Counter[str]]] = {}
    everything: dict[str, list[dict[str, object]]] = {}
    targets = [("url", args.url)] if args.url else [(m, None) for m in args.models.split(",")]
    with tempfile.TemporaryDirectory(prefix="fuzzingclient-") as tmp:
        log_dir = args.logs or tmp
        os.makedirs(log_dir, exist_ok=True)
        for model, url in targets:
            start = time.monotonic()
            print(f"== {model}", file=sys.stderr, flush=True)
            if url:
                host, _, port = url.rpartition(":")
                results = run_all(cases, host, int(port), timing, progress=True)
            else:
                with served(model, log_dir) as port:
                    results = run_all(cases, "127.0.0.1", port, timing, progress=True)
            print(f"   {time.monotonic() - start:.0f} s", file=sys.stderr)
            tables[model] = counts(results)
            everything[model] = [asdict(r) for r in results]
    print(markdown(tables))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(everything, fh, indent=1)
    failed = sum(t[c]["FAILED"] for t in tables.values() for c in t)
    return 1 if failed else 0
