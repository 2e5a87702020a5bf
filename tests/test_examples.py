"""The bundled example config, walked as a user would: landing page, the legacy
Tornado app (login, xsrf form, upload, chat), the Tonberry API, and a real
browser in the chat room."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re

import httpx
import pytest
import websockets
from browser import Chromium
from support import ROOT

MODELS = ["async", "fork", "prefork"]


@pytest.fixture(params=MODELS)
def example(request, spawn_qactuar):
    # exactly the README's run command (`qactuar` in the repository root),
    # on a free port and with the model under test (one prefork worker, so
    # that a chat room's members share a process)
    extra = ("--workers", "1") if request.param == "prefork" else ()
    return spawn_qactuar("--model", request.param, *extra, cwd=ROOT)


def test_landing_page_links_both_apps(example):
    page = httpx.get(example.url + "/")
    assert page.status_code == 200
    assert 'href="/legacy/"' in page.text and 'href="/api/"' in page.text


def test_tonberry_api(example):
    books = httpx.get(example.url + "/api/books").json()
    assert [b["id"] for b in books] == [1, 2, 3]
    assert httpx.get(example.url + "/api/books/find/2").json()["title"] == "Solaris"
    assert httpx.get(example.url + "/api/").json()["service"] == "books"


def test_unrouted_path_is_404(example):
    assert httpx.get(example.url + "/nowhere").status_code == 404


def test_legacy_login_and_xsrf_form(example):
    with httpx.Client(base_url=example.url, follow_redirects=False) as client:
        home = client.get("/legacy/")
        assert "Not signed in" in home.text
        assert '/legacy/static/style.css?v=' in home.text  # static_url behind the mount
        assert client.get("/legacy/notes").headers["location"].startswith("/legacy/login")
        login = client.get("/legacy/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
        # a post without the xsrf token is refused
        assert client.post("/legacy/login", data={"name": "ada"}).status_code == 403
        done = client.post("/legacy/login", data={"name": "ada", "_xsrf": xsrf})
        assert done.status_code == 302 and done.headers["location"] == "/legacy/notes"
        note = client.post("/legacy/notes", data={"text": "from a test", "_xsrf": xsrf})
        assert note.status_code == 302
        # in the fork model each request is a fresh child: the note is gone,
        # the signed-cookie login is not
        notes = client.get("/legacy/notes")
        assert notes.status_code == 200 and "Notes of ada" in notes.text
        assert "Signed in as ada" in client.get("/legacy/").text
        assert client.get("/legacy/greet/grace").json()["greeting"] == "Hello, grace!"


def test_legacy_streamed_upload(example):
    data = os.urandom(3 * 1024 * 1024 + 17)
    with httpx.Client(base_url=example.url) as client:
        client.get("/legacy/login")
        xsrf = client.cookies["_xsrf"]
        reply = client.put("/legacy/upload", content=data, headers={"X-XSRFToken": xsrf})
    assert reply.status_code == 200
    assert reply.json() == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_legacy_websocket_chat(example):
    async def chat() -> list[dict]:
        url = example.url.replace("http", "ws") + "/legacy/ws/lobby"
        async with websockets.connect(url) as alice, websockets.connect(url) as bob:
            await alice.send("hi bob")
            got = [json.loads(await asyncio.wait_for(bob.recv(), 5)),
                   json.loads(await asyncio.wait_for(alice.recv(), 5))]
        return got

    if example.proc.args[example.proc.args.index("--model") + 1] == "fork":
        # each websocket lives in its own child: no shared room, each sees its own echo
        async def solo() -> dict:
            url = example.url.replace("http", "ws") + "/legacy/ws/lobby"
            async with websockets.connect(url) as ws:
                await ws.send("alone")
                return json.loads(await asyncio.wait_for(ws.recv(), 5))

        assert asyncio.run(solo()) == {"room": "lobby", "text": "alone"}
        return
    assert asyncio.run(chat()) == [{"room": "lobby", "text": "hi bob"}] * 2


def test_browser_chat_exchanges_a_message(example, browser, tmp_path):
    # the page sends its text once its websocket is open; the echo is a list item
    chromium = Chromium(browser, example.url + "/legacy/chat/lobby#autosend",
                        str(tmp_path / "profile"))
    try:
        dom = chromium.wait_for("document.querySelector('li.message') !== null")
    finally:
        chromium.stop()
    assert '<li class="message">hello from the browser</li>' in dom
