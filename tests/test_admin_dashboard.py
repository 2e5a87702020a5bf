"""The admin dashboard: its files and headers through a real socket, then the page in Chromium.

``dashboard_app`` is served by qactuar's core (the ``serve`` fixture) and read
with httpx: the page and each asset with its content type, the CSP, nosniff,
no framing, revalidation (ETag, 304), nothing else served. Then headless
Chromium (tests/browser.py) opens the page from the stand-in admin app
(tests/admin_standin.py, whose /status counters grow with each call), signs in
with the token, and the test reads from the page what a person would see: the
requests/s figure above zero, the stand-in's processes, a live key edited (the
PATCH the stand-in received, with the browser's Origin and the cookie, no
token), a refused value's reason shown inline, an app mounted and unmounted;
a screenshot is saved (browser.artifact_path).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import re
from importlib import resources
from typing import Any

import httpx
import pytest
from admin_standin import TOKEN, StandIn
from browser import BROWSER_TIMEOUT, Chromium, artifact_path, js, wait_page
from support import ROOT, wait_until
from websockets.sync.client import connect

from qactuar.admin.dashboard import ASSETS, CONTENT_SECURITY_POLICY, dashboard_app

STATIC = resources.files("qactuar.admin") / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_and_strict_headers(serve: Any) -> None:
    assert CONTENT_SECURITY_POLICY == CSP
    with serve(dashboard_app) as srv:
        page = httpx.get(f"{srv.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert_security_headers(page)
    html = page.text
    assert html.encode() == STATIC.joinpath("index.html").read_bytes()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert [attrs.strip() for attrs, _ in scripts] == [
        'src="assets/uPlot.iife.min.js" defer', 'type="module" src="assets/dashboard.js"']
    assert all(body == "" for _, body in scripts)
    assert re.search(r"<[^>]*\s(style|on[a-z]+)\s*=", html, re.I) is None  # inline handlers
    assert "<style" not in html
    assert TOKEN not in html


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_each_asset_with_its_content_type_and_revalidation(serve: Any, name: str) -> None:
    with serve(dashboard_app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        got = client.get(f"/assets/{name}")
        again = client.get(f"/assets/{name}", headers={"if-none-match": got.headers["etag"]})
        head = client.head(f"/assets/{name}")
    assert got.status_code == 200
    assert got.content == STATIC.joinpath(name).read_bytes()
    assert got.headers["content-type"] == ASSETS[name]
    assert got.headers["content-type"] == {
        ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
        ".LICENSE": "text/plain; charset=utf-8"}[name[name.rindex("."):]]
    assert got.headers["cache-control"] == "no-cache"
    assert got.headers["content-length"] == str(len(got.content))
    assert_security_headers(got)
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == got.headers["etag"]
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(got.content))


def test_nothing_else_is_served(serve: Any) -> None:
    with serve(dashboard_app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        missing = [client.get(path).status_code for path in (
            "/assets/VENDORED.md", "/assets/index.html", "/assets/", "/assets/nope.js",
            "/assets/%2e%2e/dashboard.py", "/index.html", "/static/dashboard.js")]
        posted = client.post("/", content=b"{}")
    assert missing == [404] * 7
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
    assert_security_headers(posted)


def test_the_vendored_uplot_is_the_one_recorded_and_ships_in_the_wheel() -> None:
    vendored = STATIC.joinpath("VENDORED.md").read_text()
    recorded = dict((name, digest) for digest, name in
                    re.findall(r"^ {4}([0-9a-f]{64})  (\S+)$", vendored, re.M))
    assert sorted(recorded) == ["uPlot.LICENSE", "uPlot.iife.min.js", "uPlot.min.css"]
    for name, digest in recorded.items():
        assert hashlib.sha256(STATIC.joinpath(name).read_bytes()).hexdigest() == digest, name
    assert "uPlot (v1.6.32)" in STATIC.joinpath("uPlot.iife.min.js").read_text()[:80]
    # setup.cfg read as the INI file it is (a Python 3.12+ venv has no setuptools)
    setup = configparser.ConfigParser()
    setup.read(f"{ROOT}/setup.cfg", encoding="utf-8")
    assert setup["options.package_data"]["qactuar.admin"].strip() == "static/*"


@pytest.mark.parametrize("dialect", ["app", "brief"])
def test_chromium_signs_in_and_sees_the_figures_change(browser: str, serve: Any,
                                                       tmp_path: Any, dialect: str) -> None:
    standin = StandIn(dialect)
    with serve(standin) as srv:
        chromium = Chromium(browser, f"{srv.url}/", str(tmp_path / "profile"))
        try:
            with connect(chromium.page_socket(), open_timeout=10, max_size=None) as devtools:
                drive_the_dashboard(chromium, devtools, standin, srv.url, tmp_path)
        finally:
            chromium.stop()


def drive_the_dashboard(chromium: Chromium, devtools: Any, standin: StandIn, url: str,
                        tmp_path: Any) -> None:
    def page(expression: str) -> Any:
        return chromium.evaluate(devtools, expression)

    wait_page(chromium, devtools, "!document.getElementById('sign-in').hidden",
              "the sign-in form")
    assert page("document.getElementById('dashboard').hidden") is True
    page(js("document.getElementById('token').value = 'not-the-token';"
            "document.getElementById('sign-in-form').requestSubmit(); return true;"))
    wait_page(chromium, devtools,
              "document.getElementById('sign-in-error').textContent === 'Wrong token.'",
              "a wrong token refused")
    assert page("document.getElementById('dashboard').hidden") is True
    page(js(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
            "document.getElementById('sign-in-form').requestSubmit(); return true;"))
    # the figures: requests/s from the change between two polls of /status
    rps = wait_page(chromium, devtools,
                    "parseFloat(document.getElementById('rps').textContent) > 0 &&"
                    " document.getElementById('rps').textContent", "requests/s above zero")
    assert float(rps) > 0
    [_, (login_headers, login_body)] = standin.recorded("POST", "/login")
    assert login_body == {"token": TOKEN}
    assert login_headers["content-type"] == "application/json"
    assert login_headers["origin"] == url
    rows = wait_page(chromium, devtools, js(
        "const rows = Array.from(document.querySelectorAll('#processes tbody tr'));"
        "return rows.length === 3 && rows.map(r => Array.from(r.cells, c => c.textContent));"),
        "the processes table")
    assert [row[:3] for row in rows] == [["4100", "master", "ready"],
                                         ["4101", "worker", "serving"],
                                         ["4102", "worker", "ready"]]
    assert [row[6] for row in rows] == ["40.0 MiB", "50.0 MiB", "30.0 MiB"]
    assert page("document.getElementById('process-count').textContent") == "3"
    assert page("document.querySelectorAll('.uplot canvas').length") == 4  # uPlot drew
    assert page("getComputedStyle(document.body).maxWidth") == "1200px"  # its CSS applies
    # the token is kept nowhere the page's script could read it again
    assert page("document.getElementById('token').value") == ""
    assert page("document.cookie") == ""  # the session cookie is HttpOnly
    # the token is nowhere in storage: only the session's secret, which the cookie needs
    assert page("localStorage.length") == 0
    assert page("Object.keys(sessionStorage)") == ["qactuar-session"]
    secret = page("sessionStorage.getItem('qactuar-session')")
    assert TOKEN not in page("JSON.stringify(sessionStorage)") and len(secret) == 32
    assert secret in standin.sessions.values()
    assert standin.recorded("GET", "/status/series") != []
    assert all("authorization" not in h for h, _ in standin.recorded("GET", "/status"))

    # a live key edited: the PATCH, with the cookie and the page's Origin
    wait_page(chromium, devtools, "!!document.getElementById('config-MAX_REQUESTS')",
              "the config table")
    assert page("!!document.querySelector('#config tr[data-key=\"PORT\"] input')") is False
    # (the input is marked: the table drawn again after the PATCH has a new one)
    page(js("const input = document.getElementById('config-MAX_REQUESTS');"
            "input.dataset.before = '1'; input.value = '500';"
            "document.getElementById('config-save-MAX_REQUESTS').click(); return true;"))
    wait_until(lambda: standin.recorded("PATCH", "/config"), BROWSER_TIMEOUT,
               what="the PATCH /config", interval=0.1)
    [(headers, body)] = standin.recorded("PATCH", "/config")
    assert body == {"MAX_REQUESTS": 500}
    assert headers["content-type"] == "application/json"
    assert headers["origin"] == url
    assert "qt_admin=" in headers["cookie"] and "authorization" not in headers
    assert headers["x-qactuar-session"] == secret
    wait_page(chromium, devtools, "document.getElementById('message').textContent === "
              "'MAX_REQUESTS set to 500.'", "the change confirmed")
    # a value the server refuses: its reason next to the key
    # the table drawn again from the server's answer (a click on the old one
    # would be lost when it is replaced: the test raced it under load)
    wait_page(chromium, devtools,
              "!document.getElementById('config-MAX_REQUESTS').dataset.before &&"
              " document.getElementById('config-MAX_REQUESTS').value === '500'",
              "the config table drawn again, showing the value in force")
    page(js("document.getElementById('config-MAX_REQUESTS').value = '2.5';"
            "document.getElementById('config-save-MAX_REQUESTS').click(); return true;"))
    wait_page(chromium, devtools, "document.getElementById('config-error-MAX_REQUESTS')"
              ".textContent === '400: MAX_REQUESTS: expected int, got 2.5'",
              "the server's reason shown inline")

    # apps: mount one, unmount another
    wait_page(chromium, devtools, "document.querySelectorAll('#apps tbody tr').length === 2",
              "the apps table")
    page(js("document.getElementById('mount-route').value = '/blog';"
            "document.getElementById('mount-app').value = 'blog:app';"
            "document.getElementById('mount-form').requestSubmit(); return true;"))
    wait_page(chromium, devtools,
              "!!document.querySelector('#apps tr[data-route=\"/blog\"]')", "/blog mounted")
    assert [b for _, b in standin.recorded("POST", "/apps")] == [
        {"route": "/blog", "app": "blog:app"}]
    page("document.querySelector('#apps tr[data-route=\"/api/v2\"] button').click()")
    wait_page(chromium, devtools,
              "!document.querySelector('#apps tr[data-route=\"/api/v2\"]')", "/api/v2 gone")
    assert len(standin.recorded("DELETE", "/apps/api/v2")) == 1

    # a few seconds of figures on the charts before the picture ("app": five points of history)
    points = 8 if standin.dialect == "app" else 4
    wait_page(chromium, devtools,
              f"document.getElementById('chart-rps').dataset.points >= {points}",
              f"{points} points on the charts")
    shot = chromium.screenshot(
        devtools, artifact_path(f"admin-dashboard-{standin.dialect}.png", str(tmp_path)))
    with open(shot, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    assert page("document.body.dataset.scriptErrors || '0'") == "0", page(
        "document.getElementById('message').textContent")
    page("document.getElementById('sign-out').click()")
    wait_page(chromium, devtools, "!document.getElementById('sign-in').hidden &&"
              " document.getElementById('dashboard').hidden", "signed out")
    assert len(standin.recorded("POST", "/logout")) == 1

    # signed in again, the session ends on the server's side: the page asks for the token
    page(js(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
            "document.getElementById('sign-in-form').requestSubmit(); return true;"))
    wait_page(chromium, devtools, "document.getElementById('dashboard').hidden === false",
              "signed in again")
    standin.sessions.clear()
    wait_page(chromium, devtools, "!document.getElementById('sign-in').hidden &&"
              " document.getElementById('sign-in-error').textContent ==="
              " 'Your session ended: sign in again.'", "the expired session noticed")
