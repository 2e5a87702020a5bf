"""Tornado objects named directly in APPS: the loader wraps them with the bridge."""

from __future__ import annotations

from tornado import web


class Hello(web.RequestHandler):
    def get(self) -> None:
        self.write({"handler": "Hello", "path": self.request.path})


class Item(web.RequestHandler):
    def get(self, item_id: str) -> None:
        self.write({"handler": "Item", "id": item_id, "uri": self.request.uri})

    def post(self, item_id: str) -> None:
        self.write({"handler": "Item", "id": item_id, "body": self.request.body.decode()})


# Tornado sees the full path, so the routes carry the APPS prefix
application = web.Application([(r"/legacy/items/(\w+)", Item), (r"/legacy/", Hello)])
