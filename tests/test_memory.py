"""Memory (issue 14): what a server of ASGI apps loads, and RSS that stays flat
under load: a bounded leak check (a few thousand requests; the 100,000-request
figures are benchmarks/memory.py's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from support import children_of, rss_kib, wait_until

APPS_DIR = os.path.join(os.path.dirname(__file__), "apps")
#: RSS growth allowed over the measured requests: generous (allocator arenas,
#: the first pass through rarely used code), far below a leak of even 1 KiB
#: per request.
GROWTH_KIB = 3 * 1024


def _loaded(apps: dict[str, str]) -> list[str]:
    """The tornado and bridge modules a process has after ``build_app(apps)``."""
    code = (
        "import json, sys\n"
        "from qactuar.importer import build_app\n"
        "build_app(json.loads(sys.argv[1]))\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] == 'tornado' or m.startswith('qactuar.tornado_bridge'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(apps)], cwd=APPS_DIR, capture_output=True,
        text=True, timeout=60, check=True,
    )
    return list(json.loads(out.stdout))


def test_a_server_of_asgi_apps_never_loads_tornado_nor_the_bridge() -> None:
    assert _loaded({"/": "basic:hello"}) == []


def test_a_tornado_app_beside_an_asgi_app_is_still_bridged() -> None:
    loaded = _loaded({"/legacy": "tornado_apps:application", "/": "basic:hello"})
    assert "tornado.web" in loaded and "qactuar.tornado_bridge" in loaded


def _serve(client: httpx.Client, count: int) -> None:
    for _ in range(count):
        response = client.get("/")
        assert response.status_code == 200


@pytest.mark.parametrize("model", ["async", "prefork"])
def test_rss_stays_flat_over_thousands_of_requests(spawn_qactuar, model: str) -> None:
    extra = ("--workers", "1") if model == "prefork" else ()
    proc = spawn_qactuar("basic:hello", "--model", model, "--no-access-log", *extra)
    # (the prefork master listens before its worker is forked: wait for it)
    serving = proc.pid if model == "async" else wait_until(
        lambda: children_of(proc.pid), 10, what="the worker")[0]
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        _serve(client, 500)  # warm: every path and pool once
        before = rss_kib(serving)
        _serve(client, 3000)
    after = rss_kib(serving)
    assert after - before < GROWTH_KIB, (before, after)
