"""APPS routing (issue 3, item 8): whole segments, longest prefix, root_path, 404."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from qactuar.importer import build_app

APPS = {
    "/": "core:tagged_root",
    "/api": "core:tagged_api",
    "/api/v2": "core:tagged_v2",
    "/other/": "core:tagged_other",  # a trailing slash means the same route
}

# request path -> (app, root_path, path)
EXPECTED = [
    ("/", "root", "", "/"),
    ("/api", "api", "/api", "/api"),
    ("/api/", "api", "/api", "/api/"),
    ("/api/x", "api", "/api", "/api/x"),
    ("/apix", "root", "", "/apix"),
    ("/api/v2", "v2", "/api/v2", "/api/v2"),
    ("/api/v2/users/7", "v2", "/api/v2", "/api/v2/users/7"),
    ("/api/v2x", "api", "/api", "/api/v2x"),
    ("/api/v3", "api", "/api", "/api/v3"),
    ("/other", "other", "/other", "/other"),
    ("/other/a/b", "other", "/other", "/other/a/b"),
    ("/otherwise", "root", "", "/otherwise"),
]


@pytest.fixture
def serve_apps(serve):
    def start(apps: dict[str, str], **settings: Any) -> Any:
        # in this process the apps package is importable as "apps"
        return serve(build_app({k: "apps." + v for k, v in apps.items()}), **settings)

    return start


def test_config_file_mounts_in_a_process(spawn_qactuar, tmp_path):
    conf = tmp_path / "apps.json"
    conf.write_text(json.dumps({"APPS": APPS}))
    proc = spawn_qactuar(env={"QACTUAR_CONFIG": str(conf)})
    with httpx.Client(base_url=proc.url, timeout=5) as client:
        for path, app, root_path, full_path in EXPECTED:
            report = client.get(path).json()
            assert (report["app"], report["root_path"], report["path"]) == (
                app, root_path, full_path), path


def test_matching_is_by_whole_segments_longest_first(serve_apps):
    with serve_apps(APPS) as srv, httpx.Client(base_url=srv.url, timeout=5) as client:
        for path, app, root_path, full_path in EXPECTED:
            report = client.get(path).json()
            assert (report["app"], report["root_path"], report["path"]) == (
                app, root_path, full_path), path


def test_root_path_from_the_config_is_extended_by_the_route(serve_apps):
    with serve_apps(APPS, ROOT_PATH="/proxy") as srv:
        api = httpx.get(srv.url + "/api/x?q=1", timeout=5).json()
        root = httpx.get(srv.url + "/apix", timeout=5).json()
    assert (api["app"], api["root_path"], api["path"]) == ("api", "/proxy/api", "/proxy/api/x")
    assert (root["app"], root["root_path"], root["path"]) == ("root", "/proxy", "/proxy/apix")


def test_raw_path_is_kept_as_sent(serve_apps):
    with serve_apps(APPS) as srv:
        report = httpx.get(srv.url + "/api/caf%C3%A9", timeout=5).json()
    assert report["app"] == "api"
    assert report["path"] == "/api/café"
    assert report["raw_path"] == "/api/caf%C3%A9"


def test_no_match_is_404_without_a_root_mount(serve_apps):
    with serve_apps({"/api": "core:tagged_api", "/v2": "core:tagged_v2"}) as srv:
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            assert client.get("/api/x").json()["app"] == "api"
            assert client.get("/v2").json()["app"] == "v2"
            for path in ("/", "/apix", "/nothing/api", "/v", "/v2x"):
                response = client.get(path)
                assert response.status_code == 404, path
                assert response.text.strip() == "Not Found"
            # a POST body the router never reads does not break the connection
            response = client.post("/missing", content=b"z" * 200_000)
            assert response.status_code == 404
            assert client.get("/api").json()["app"] == "api"


def test_a_single_root_mount_serves_everything(serve_apps):
    with serve_apps({"/": "core:tagged_root"}) as srv:
        report = httpx.get(srv.url + "/deep/path", timeout=5).json()
    assert (report["app"], report["root_path"], report["path"]) == ("root", "", "/deep/path")


def test_tornado_objects_in_apps_are_wrapped(serve_apps):
    apps = {"/": "core:tagged_root", "/hello": "tornado_apps:Hello",
            "/legacy": "tornado_apps:application"}
    with serve_apps(apps) as srv, httpx.Client(base_url=srv.url, timeout=5) as client:
        assert client.get("/hello").json() == {"handler": "Hello", "path": "/hello"}
        assert client.get("/legacy/").json()["handler"] == "Hello"
        assert client.get("/legacy/items/42?x=1").json() == {
            "handler": "Item", "id": "42", "uri": "/legacy/items/42?x=1"}
        posted = client.post("/legacy/items/7", content=b"payload").json()
        assert posted == {"handler": "Item", "id": "7", "body": "payload"}
        assert client.get("/legacy/nothing").status_code == 404
        assert client.get("/legacyx").json()["app"] == "root"


def test_websocket_to_an_unrouted_path_gets_a_404(serve_apps):
    import asyncio

    import websockets

    async def attempt(url):
        try:
            async with websockets.connect(url):
                return None
        except websockets.exceptions.InvalidStatus as exc:
            return exc.response.status_code, exc.response.body

    with serve_apps({"/api": "core:tagged_api"}) as srv:
        url = srv.url.replace("http", "ws") + "/nowhere"
        status, body = asyncio.run(attempt(url))
    assert status == 404
    assert body.strip() == b"Not Found"
