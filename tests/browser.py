"""Headless Chromium (Debian's package) for tests that look at a page as a person would."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is missing: run scripts/install-test-tools (make test does)")
    return path


def dump_dom(url: str, budget_ms: int = 5000, timeout: float = 60) -> str:
    """Load ``url``, let its scripts run for ``budget_ms`` of virtual time, return the DOM."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    return result.stdout
