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

from typing import Any

import pytest
from browser import Chromium
from wsraw import read_report

from qactuar.config import MODELS


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
