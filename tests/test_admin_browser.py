"""The admin dashboard in headless Chromium against a real server (issue 12's acceptance).

A ``prefork`` server with two workers and the admin socket; Chromium opens the
admin socket's ``/``, gets the dashboard's sign-in form, signs in with the token, and
while a load runs on the main port the test reads from the page what a person
would see: requests/s above zero and the processes table listing the master
and both workers (the pids the API gives). A screenshot is saved as a test
artifact (``browser.artifact_path``; the README's picture is one).
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
from browser import BROWSER_TIMEOUT, Chromium, artifact_path, js, wait_page
from support import ADMIN, TOKEN, Admin, admin_port, wait_until
from websockets.sync.client import connect

LOAD_SECONDS = 20


def _load(url: str, stop: threading.Event, answered: list[int]) -> None:
    """Requests on the main port until ``stop`` (bounded in time and count)."""
    deadline = time.monotonic() + LOAD_SECONDS
    with httpx.Client(timeout=10) as client:
        for _ in range(100_000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            answered.append(client.get(url).status_code)


def test_the_dashboard_signs_in_and_shows_a_running_prefork_server(
    browser: str, spawn_qactuar: Any, tmp_path: Any,
) -> None:
    server = spawn_qactuar("basic:hello", "--model", "prefork", "--workers", "2",
                           "--no-access-log", *ADMIN, "--admin-token", TOKEN)
    port = admin_port(server)
    server.wait_for_log("serving", count=2)  # "Worker N serving", each
    admin = Admin(port)
    pids = {p["pid"]: p["role"] for p in admin.status()["processes"]}
    assert sorted(pids.values()) == ["master", "worker", "worker"]

    chromium = Chromium(browser, f"http://127.0.0.1:{port}/", str(tmp_path / "profile"))
    stop = threading.Event()
    answered: list[int] = []
    load = threading.Thread(target=_load, args=(server.url + "/", stop, answered), daemon=True)
    try:
        with connect(chromium.page_socket(), open_timeout=10, max_size=None) as devtools:
            def page(expression: str) -> Any:
                return chromium.evaluate(devtools, expression)

            # the sign-in form: the token, once
            # shown by the page's script once /status answered 401 (its listener is set)
            wait_page(chromium, devtools, "!!document.getElementById('sign-in') &&"
                      " !document.getElementById('sign-in').hidden", "the sign-in form")
            assert TOKEN not in page("document.documentElement.outerHTML")
            page(js(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
                    "document.getElementById('sign-in-form').requestSubmit(); return true;"))
            wait_page(chromium, devtools, "!!document.getElementById('dashboard') &&"
                      " !document.getElementById('dashboard').hidden", "the dashboard")
            assert page("document.cookie") == ""  # the session cookie is HttpOnly
            assert TOKEN not in page("document.documentElement.outerHTML")
            # the token is nowhere in storage; the session's secret alone, beside the cookie
            assert page("localStorage.length") == 0
            assert page("Object.keys(sessionStorage)") == ["qactuar-session"]
            assert TOKEN not in page("JSON.stringify(sessionStorage)")

            load.start()
            wait_until(lambda: len(answered) >= 50, 15, what="the load under way")
            rps = wait_page(chromium, devtools,
                            "parseFloat(document.getElementById('rps').textContent) > 0 &&"
                            " document.getElementById('rps').textContent",
                            "requests/s above zero")
            assert float(re.sub(r"[^0-9.]", "", rps)) > 0
            rows = wait_page(chromium, devtools, js(
                "const rows = Array.from(document.querySelectorAll('#processes tbody tr'));"
                "return rows.length === 3 && rows.map(r => Array.from(r.cells,"
                " c => c.textContent));"), "the processes table")
            assert {int(row[0]): row[1] for row in rows} == pids
            wait_page(chromium, devtools,
                      "document.getElementById('chart-rps').dataset.points >= 5",
                      "a few seconds on the charts")
            shot = chromium.screenshot(
                devtools, artifact_path("admin-dashboard-prefork.png", str(tmp_path)))
            with open(shot, "rb") as fh:
                assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
            assert page("document.body.dataset.scriptErrors || '0'") == "0"
    finally:
        stop.set()
        if load.is_alive():
            load.join(BROWSER_TIMEOUT)
        chromium.stop()
    assert answered and set(answered) == {200}
