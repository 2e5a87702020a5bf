"""Autobahn|Testsuite's fuzzing-client cases (tests/fuzzingclient) against ws:app, every model.

The fast chapters (1-7 and 10) run whole, with a sample of 12 and 13
(permessage-deflate, on generated stand-ins for Autobahn's data files); the
full run (chapter 9, all of 12/13, Autobahn's own delays) is ``make
autobahn``. No case may be FAILED; the informational cases are the three
Autobahn marks so, and deflate is negotiated (no UNIMPLEMENTED).

Timing: the pauses in which the server must stay quiet are 0.1 s here
(Autobahn: 1 s; a server that fails to fail fast still shows within it as
NON-STRICT, not as a pass); every limit that ends early on an event is
Autobahn's times 3, so a loaded machine does not turn a slow answer into a
failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from fuzzingclient.case import Timing
from fuzzingclient.run import SERVER_ENV, Result, run_all, select
from support import Spawned

MODELS = ["async", "fork", "prefork"]
FAST = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
# 12/13 (1000 round trips each): text and binary data, and the offers that change the
# server's side: window bits 15, no context takeover with 9 bits, three offers at once
SAMPLE = ["12.1.2", "12.2.3", "13.4.3", "13.5.2", "13.7.2"]
INFORMATIONAL = {"7.1.6", "7.13.1", "7.13.2"}
# a valid message just before a bad frame: whether its echo beats the 1002 close depends on
# how the writes coalesce (the bare websockets library does the same); everything else is OK
MAY_BE_NON_STRICT = {"3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5",
                     "5.15"}
TIMING = Timing(pause=0.1, slack=3.0)


def run(spawn_qactuar: Callable[..., Spawned], model: str, patterns: list[str]
        ) -> list[Result]:
    extra = ("--workers", "2") if model == "prefork" else ()
    server = spawn_qactuar("ws:app", "--model", model, *extra, env=SERVER_ENV)
    return run_all(select(patterns), "127.0.0.1", server.port, TIMING)


def failed(results: list[Result]) -> dict[str, str]:
    return {r.id: f"{r.behavior}/{r.behavior_close}: {r.result} {r.result_close} "
                  f"(close {r.remote_close_code}, {r.violation or 'no violation'})"
            for r in results if r.verdict == "FAILED"}


@pytest.mark.parametrize("model", MODELS)
def test_autobahn_fast_chapters(spawn_qactuar: Callable[..., Spawned], model: str) -> None:
    results = run(spawn_qactuar, model, FAST + SAMPLE)
    assert len(results) == 247 + len(SAMPLE)
    assert failed(results) == {}
    verdicts = Counter(r.verdict for r in results)
    assert {r.id for r in results if r.verdict == "INFORMATIONAL"} == INFORMATIONAL
    assert {r.id for r in results if r.verdict == "NON-STRICT"} <= MAY_BE_NON_STRICT
    assert verdicts["UNIMPLEMENTED"] == 0
    # the server closed every connection itself (Autobahn: "It is preferred
    # that the server close the TCP connection")
    assert [r.id for r in results if r.behavior_close == "FAILED BY CLIENT"] == []
