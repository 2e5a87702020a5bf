"""URLs under an ASGI mount: full paths by default, or stripped ones.

The mounts are qactuar's own router (qactuar/routing.py, what the APPS
setting builds), a plain ASGI app: under every driver.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import tornado.web
from tornado.routing import PathMatches, RuleRouter

from qactuar.routing import Router
from qactuar.tornado_bridge import wrap

from .servers import Serve


class LinkHandler(tornado.web.RequestHandler):
    def get(self, item_id: str) -> None:
        self.write(
            {
                "item": item_id,
                "path": self.request.path,
                "link": self.reverse_url("item", "42"),
                "static": self.static_url("s.txt", include_version=False),
            }
        )


def _static(tmp_path: Path) -> str:
    (tmp_path / "s.txt").write_text("static file")
    return str(tmp_path)


def test_default_mount_sees_full_paths(serve: Serve, tmp_path: Path) -> None:
    app = wrap(
        [tornado.web.url(r"/legacy/item/(\d+)", LinkHandler, name="item")],
        static_path=_static(tmp_path),
        static_url_prefix="/legacy/static/",
    )
    with serve(Router({"/legacy": app})) as url, httpx.Client(base_url=url) as client:
        page = client.get("/legacy/item/7").json()
        static = client.get(page["static"])
    assert page == {
        "item": "7",
        "path": "/legacy/item/7",
        "link": "/legacy/item/42",
        "static": "/legacy/static/s.txt",
    }
    assert static.text == "static file"


def test_same_stripped_app_at_two_mounts_links_under_each(serve: Serve, tmp_path: Path) -> None:
    app = wrap(
        [tornado.web.url(r"/item/(\d+)", LinkHandler, name="item")],
        strip_root_path=True,
        static_path=_static(tmp_path),
    )
    router = Router({"/a": app, "/": app})
    with serve(router) as url, httpx.Client(base_url=url) as client:
        under_a = client.get("/a/item/7").json()
        at_root = client.get("/item/8").json()
        # The links work where they were made.
        followed_a = client.get(under_a["link"]).json()
        static_a = client.get(under_a["static"])
    assert under_a == {
        "item": "7",
        "path": "/item/7",
        "link": "/a/item/42",
        "static": "/a/static/s.txt",
    }
    assert at_root == {
        "item": "8",
        "path": "/item/8",
        "link": "/item/42",
        "static": "/static/s.txt",
    }
    assert followed_a["item"] == "42"
    assert static_a.text == "static file"


def test_stripped_mount_with_percent_encoded_prefix(serve: Serve, tmp_path: Path) -> None:
    app = wrap(
        [tornado.web.url(r"/item/(\d+)", LinkHandler, name="item")],
        strip_root_path=True,
        static_path=_static(tmp_path),
    )
    with serve(Router({"/caf\u00e9 bar": app})) as url:
        page = httpx.get(f"{url}/caf%C3%A9%20bar/item/3").json()
    assert page["path"] == "/item/3"
    assert page["link"] == "/caf%C3%A9%20bar/item/42"
    assert page["static"] == "/caf%C3%A9%20bar/static/s.txt"


class ItemHandler(tornado.web.RequestHandler):
    def initialize(self, store: dict[str, str]) -> None:
        self.store = store

    def get(self, item_id: str) -> None:
        self.write({"id": item_id, "value": self.store.get(item_id), "path": self.request.path})


def test_single_handler_pattern_matches_below_its_mount(serve: Serve) -> None:
    app = wrap(ItemHandler, pattern=r"/(\d+)", kwargs={"store": {"7": "seven"}})
    router = Router({"/items": app, "/": app})
    with serve(router) as url, httpx.Client(base_url=url) as client:
        mounted = client.get("/items/7")
        at_root = client.get("/7")
        not_matching = client.get("/items/seven")
    assert mounted.json() == {"id": "7", "value": "seven", "path": "/items/7"}
    assert at_root.json() == {"id": "7", "value": "seven", "path": "/7"}
    assert not_matching.status_code == 404


class AnyPathHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(self.request.path)


def test_single_handler_serves_every_path_by_default(serve: Serve) -> None:
    router = Router({"/any": wrap(AnyPathHandler)})
    with serve(router) as url, httpx.Client(base_url=url) as client:
        assert client.get("/any").text == "/any"
        assert client.get("/any/deep/er").text == "/any/deep/er"


class HelloHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("hello from a router")


def test_tornado_router_objects_are_served(serve: Serve) -> None:
    router = RuleRouter(
        [(PathMatches("/hello"), tornado.web.Application([("/hello", HelloHandler)]))]
    )
    with serve(wrap(router)) as url:
        assert httpx.get(f"{url}/hello").text == "hello from a router"
