"""Headless Chromium (Debian's package) for tests that look at a page as a person would.

``Chromium`` drives it over the DevTools protocol (``--remote-debugging-port``,
with the ``websockets`` client) and polls the page until a condition holds.
(``--dump-dom`` with ``--virtual-time-budget`` was flaky under load: virtual
time does not wait for a websocket, so the DOM was sometimes dumped before
the message arrived.)
"""

from __future__ import annotations

import base64
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


def artifact_path(name: str, fallback_dir: str) -> str:
    """Where a test saves a file for people to look at (a screenshot): the folder
    $QT_TEST_ARTIFACTS names (made if missing; CI can keep it; not QACTUAR_*:
    the server takes those for settings and refuses an unknown one), else ``fallback_dir``
    (the test's tmp_path, which pytest keeps for its last three runs)."""
    folder = os.environ.get("QT_TEST_ARTIFACTS") or fallback_dir
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)


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
        """The expression's value; None while the page has no context to evaluate it in."""
        reply = self._reply(devtools, "Runtime.evaluate",
                            {"expression": expression, "returnByValue": True})
        return reply.get("result", {}).get("result", {}).get("value")

    def call(self, devtools: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A DevTools method's result; AssertionError with its error."""
        reply = self._reply(devtools, method, params)
        if "error" in reply:
            raise AssertionError(f"DevTools {method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def _reply(self, devtools: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        call_id = self.calls
        devtools.send(json.dumps({"id": call_id, "method": method, "params": params}))
        for _ in range(1000):  # events that arrive meanwhile are skipped
            reply = json.loads(devtools.recv(timeout=10))
            if reply.get("id") == call_id:
                return dict(reply)
        raise AssertionError("no DevTools reply")

    def screenshot(self, devtools: Any, path: str, width: int = 1280, height: int = 1600) -> str:
        """Save the page, laid out ``width`` x ``height`` CSS pixels, as a PNG at ``path``."""
        self.call(devtools, "Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        shot = self.call(devtools, "Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(shot["data"]))
        return path

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its zygote and renderers too
        except ProcessLookupError:
            pass
        self.proc.wait(5)


#: Seconds a test waits for the page to show something.
BROWSER_TIMEOUT = 30


def wait_page(chromium: Chromium, devtools: Any, expression: str, what: str) -> Any:
    """Evaluate ``expression`` until truthy; the page's HTML in the failure."""
    try:
        return wait_until(lambda: chromium.evaluate(devtools, expression), BROWSER_TIMEOUT,
                          what=what, interval=0.1)
    except AssertionError as exc:
        html = chromium.evaluate(devtools, "document.body.outerHTML")
        raise AssertionError(f"{exc}:\n{html}") from None


def js(expression: str) -> str:
    return f"(() => {{ {expression} }})()"
