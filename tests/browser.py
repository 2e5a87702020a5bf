"""Headless Chromium (Debian's package) for tests that look at a page as a person would.

``Chromium`` drives it over the DevTools protocol (``--remote-debugging-port``,
with the ``websockets`` client) and polls the page until a condition holds.
(``--dump-dom`` with ``--virtual-time-budget`` was flaky under load: virtual
time does not wait for a websocket, so the DOM was sometimes dumped before
the message arrived.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from typing import Any

import httpx
from support import ROOT, wait_until
from websockets.sync.client import connect


def chromium() -> str | None:
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-test-tools")],
                       timeout=900, check=False)
        path = shutil.which("chromium")
    return path


class Chromium:
    """Headless Chromium on a page, driven over the DevTools protocol (a websocket too)."""

    def __init__(self, browser: str, url: str, profile: str) -> None:
        self.proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--remote-allow-origins=*", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.profile = profile
        self.calls = 0

    def page_socket(self, timeout: float = 30) -> str:
        """The DevTools websocket URL of the page (Chromium writes its port to the profile)."""
        active = os.path.join(self.profile, "DevToolsActivePort")

        def page() -> str | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if not os.path.exists(active):
                return None
            with open(active, encoding="ascii") as fh:
                lines = fh.read().split()
            if not lines or not lines[0]:
                return None
            try:
                targets = httpx.get(f"http://127.0.0.1:{lines[0]}/json/list", timeout=5).json()
            except httpx.HTTPError:
                return None  # not serving DevTools yet
            pages = [t for t in targets if t.get("type") == "page"]
            return str(pages[0]["webSocketDebuggerUrl"]) if pages else None

        found = wait_until(page, timeout, what="chromium's DevTools port", interval=0.1)
        assert found is not None
        return found

    def wait_for(self, expression: str, timeout: float = 30) -> str:
        """Evaluate ``expression`` in the page until it is truthy; the page's HTML then."""
        with connect(self.page_socket(), open_timeout=10, max_size=None) as devtools:
            try:
                wait_until(lambda: self.evaluate(devtools, expression), timeout,
                           what=f"the page to get to {expression!r}", interval=0.1)
            except AssertionError as exc:
                html = self.evaluate(devtools, "document.documentElement.outerHTML")
                raise AssertionError(f"{exc}:\n{html}") from None
            return str(self.evaluate(devtools, "document.documentElement.outerHTML"))

    def evaluate(self, devtools: Any, expression: str) -> Any:
        self.calls += 1
        call_id = self.calls
        devtools.send(json.dumps({"id": call_id, "method": "Runtime.evaluate",
                                  "params": {"expression": expression, "returnByValue": True}}))
        for _ in range(1000):
            reply = json.loads(devtools.recv(timeout=10))
            if reply.get("id") == call_id:
                return reply.get("result", {}).get("result", {}).get("value")
        raise AssertionError("no DevTools reply")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its zygote and renderers too
        except ProcessLookupError:
            pass
        self.proc.wait(5)
