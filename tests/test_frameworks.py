"""Real frameworks run unchanged under qactuar (issue 3, acceptance)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import serve_qactuar, wait_until

from qactuar.importer import build_app

APPS = {"/star": "frameworks:starlette_app", "/fast": "frameworks:fastapi_app"}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    pytest.importorskip("multipart")
    apps = {route: "apps." + target for route, target in APPS.items()}
    with serve_qactuar(build_app(apps)) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            yield client


def test_starlette_routes_and_lifespan_state(client):
    response = client.get("/star/")
    assert response.status_code == 200
    assert response.text == "starlette home, started=True"
    assert client.get("/star/items/42?q=x").json() == {"id": 42, "q": "x"}
    assert client.get("/star/items/nope").status_code == 404
    assert client.get("/elsewhere").status_code == 404


def test_starlette_streaming_response(client):
    with client.stream("GET", "/star/stream?n=50") as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        pieces = list(response.iter_raw())
    body = b"".join(pieces)
    assert body == b"".join(f"line {i}\n".encode() for i in range(50))


def test_starlette_stream_stops_when_the_client_leaves(client):
    from apps import frameworks  # type: ignore[import-not-found]

    with client.stream("GET", "/star/forever") as response:
        assert response.status_code == 200
        for _ in response.iter_raw():
            if frameworks.forever_produced[0] >= 20:
                break
    # the response (and its connection) were closed mid-stream
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        before = frameworks.forever_produced[0]
        time.sleep(0.3)
        if frameworks.forever_produced[0] == before:
            break
    assert frameworks.forever_produced[0] == before, "the app kept streaming to nobody"
    assert frameworks.forever_produced[0] < 1000


def test_starlette_sees_is_disconnected(client):
    from apps import frameworks

    with pytest.raises(httpx.ReadTimeout):
        client.get("/star/long-poll", timeout=0.3)
    wait_until(lambda: frameworks.long_poll_seen, what="the long poll to see its client leave")
    assert frameworks.long_poll_seen == ["disconnected"]


def test_starlette_form_post(client):
    fields = {"name": "qactuar", "tag": ["a", "b"]}
    assert client.post("/star/form", data=fields).json() == {
        "name": "qactuar", "tags": ["a", "b"]}
    upload = b"PNGDATA---" + b"\x00\xff" * 100_000
    response = client.post("/star/form", data={"name": "file"},
                           files={"upload": ("pic.png", upload, "image/png")})
    assert response.json() == {"name": "file", "tags": [], "upload": {
        "filename": "pic.png", "size": len(upload), "head": "PNGDATA---"}}


def test_starlette_mount_url_for_carries_the_apps_prefix(client):
    report = client.get("/star/sub/page").json()
    base = str(client.base_url).rstrip("/")
    assert report["url_for_page"] == base + "/star/sub/page"
    assert report["url_for_item"] == base + "/star/items/7"
    assert report["url_for_home"] == base + "/star/"
    assert report["root_path"] == "/star/sub"
    assert report["path"] == "/star/sub/page"


def test_fastapi_json_body_dependency_and_path_parameter(client):
    order = {"item": "widget", "quantity": 3, "price": 2.5}
    response = client.post("/fast/orders", json=order, headers={"X-Token": "secret"})
    assert response.status_code == 200
    assert response.json() == {"user": "alice", "item": "widget", "total": 7.5}
    assert client.post("/fast/orders", json=order).status_code == 401
    bad = client.post("/fast/orders", json={"item": "w"}, headers={"X-Token": "secret"})
    assert bad.status_code == 422
    assert {e["loc"][-1] for e in bad.json()["detail"]} == {"quantity", "price"}
    assert client.get("/fast/users/5?verbose=true").json() == {"user_id": 5, "verbose": True}
    assert client.get("/fast/users/abc").status_code == 422


def test_fastapi_middleware_with_bodies_and_streams(client):
    for _ in range(3):  # keep-alive: the middleware's receive wrapper must not hang
        response = client.post("/fast/orders", headers={"X-Token": "secret"},
                               json={"item": "m", "quantity": 1, "price": 4})
        assert response.headers["x-middleware"] == "seen"
        assert response.json()["total"] == 4
    streamed = client.get("/fast/count?n=40")
    assert streamed.headers["x-middleware"] == "seen"
    assert streamed.text == "".join(f"{i}\n" for i in range(40))


def test_fastapi_openapi_knows_its_mount(client):
    schema = client.get("/fast/openapi.json").json()
    assert "/orders" in schema["paths"]
    assert schema.get("servers", [{}])[0].get("url") == "/fast"
    assert client.get("/fast/docs").status_code == 200


def test_frameworks_in_a_process(spawn_qactuar, tmp_path):
    conf = tmp_path / "apps.json"
    conf.write_text(json.dumps({"APPS": APPS}))
    proc = spawn_qactuar(env={"QACTUAR_CONFIG": str(conf)})
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        assert http.get("/star/").text == "starlette home, started=True"
        report: dict[str, Any] = http.get("/star/sub/page").json()
        assert report["url_for_page"] == proc.url + "/star/sub/page"
        response = http.post("/fast/orders", headers={"X-Token": "secret"},
                             json={"item": "x", "quantity": 2, "price": 1})
        assert response.json()["total"] == 2
