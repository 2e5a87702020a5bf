"""A real browser: headless Chromium loads a page from qactuar whose script opens a websocket.

The page (``tests/apps/ws.py``, ``/``) sends a short text and a 260 kB
compressible text over ``ws://<same host>/echo``, writes the echoes, the
negotiated extension and subprotocol and the close code into the DOM, and
closes with 4000. The test drives Chromium over the DevTools protocol
(``--remote-debugging-port``, with the ``websockets`` client), polling the
page until the close code is written, then reads the DOM back. (``--dump-dom``
with ``--virtual-time-budget`` was flaky under load: virtual time does not
wait for a websocket, so the DOM was sometimes dumped before the echo.) Chromium comes from
Debian (``scripts/install-test-tools``); the test installs it when missing
and it can (root), and skips only when it cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from conftest import ROOT
from websockets.sync.client import connect

from qactuar.config import MODELS


def chromium() -> str | None:
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-test-tools")],
                       timeout=900, check=False)
        path = shutil.which("chromium")
    return path


@pytest.fixture(scope="module")
def browser() -> str:
    path = chromium()
    if path is None:
        pytest.skip("chromium is not installed and cannot be (not root)")
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
        deadline = time.monotonic() + timeout
        active = os.path.join(self.profile, "DevToolsActivePort")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if os.path.exists(active):
                with open(active, encoding="ascii") as fh:
                    lines = fh.read().split()
                port = lines[0] if lines else ""
                if port:
                    try:
                        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                    except httpx.HTTPError:
                        targets = []
                    pages = [t for t in targets if t.get("type") == "page"]
                    if pages:
                        return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def wait_for(self, expression: str, timeout: float = 30) -> str:
        """Evaluate ``expression`` in the page until it is truthy; the page's HTML then."""
        with connect(self.page_socket(), open_timeout=10, max_size=None) as devtools:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.evaluate(devtools, expression):
                    return str(self.evaluate(devtools, "document.documentElement.outerHTML"))
                time.sleep(0.1)
            html = self.evaluate(devtools, "document.documentElement.outerHTML")
        raise AssertionError(f"the page never got to {expression!r}:\n{html}")

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


def read_report(directory: str, ident: str, timeout: float = 5) -> dict[str, Any]:
    path = os.path.join(directory, f"{ident}.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                return dict(json.load(fh)["message"])
        time.sleep(0.02)
    raise AssertionError(f"the app reported no disconnect for {ident}")


@pytest.mark.parametrize("model", MODELS)
def test_chromium_echoes_through_a_websocket(browser: str, spawn_qactuar: Any, tmp_path: Any,
                                             model: str) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    server = spawn_qactuar("ws:app", "--model", model,
                           env={"QT_WS_REPORT_DIR": str(reports)})
    chromium = Chromium(browser, f"{server.url}/?{model}", str(tmp_path / "profile"))
    try:
        dom = chromium.wait_for(
            "document.getElementById('closed') && document.getElementById('closed').textContent")
    finally:
        chromium.stop()
    assert '<p id="status">echoed</p>' in dom, dom
    assert '<p id="echo">echo:hello from chromium é</p>' in dom
    assert "extensions:permessage-deflate" in dom  # Chromium offers it; qactuar accepts
    assert "protocol:chat.v1" in dom
    assert f"big:same:{len('compressible ') * 20000}" in dom
    assert '<p id="closed">closed:4000</p>' in dom
    report = read_report(str(reports), f"browser-{model}")
    assert (report["code"], report["reason"]) == (4000, "page done")
    log = server.output()
    assert f'"WebSocket /echo?id=browser-{model}" 101' in log
    assert f'"WebSocket /echo?id=browser-{model}" closed 4000' in log
