"""Every benchmark script still starts: its imports hold and it parses its options.

The benchmarks run by hand (never here), so a change to what they import
would otherwise surface only the next time someone measures.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import ROOT

BENCHMARKS = os.path.join(ROOT, "benchmarks")
SCRIPTS = sorted(
    name for name in os.listdir(BENCHMARKS)
    if name.endswith(".py")
    and name not in ("common.py", "apps.py", "apps_fastapi.py", "fork_ceiling.py")
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_answers_help(script: str) -> None:
    done = subprocess.run([sys.executable, script, "--help"], cwd=BENCHMARKS,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_the_fork_ceiling_imports_in_both_kinds_of_process() -> None:
    for extra in ([], ["--lean"]):
        done = subprocess.run([sys.executable, "fork_ceiling.py", "0.2", *extra],
                              cwd=BENCHMARKS, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and float(done.stdout) > 0, done.stderr[-2000:]
