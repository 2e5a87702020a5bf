"""A small JSON API written with Tonberry, the framework qactuar was designed beside.

Tonberry routes on the request's full path, so the API's classes start with
an ``api`` branch: it answers on ``/api/...`` alone (``qactuar
examples.tonberry_app:app``) and mounted at ``/api`` in qactuar_config.json.
"""

from __future__ import annotations

from typing import Any

from tonberry import create_app, expose
from tonberry.content_types import ApplicationJson

BOOKS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"},
    2: {"id": 2, "title": "Solaris", "author": "Stanisław Lem"},
    3: {"id": 3, "title": "Kindred", "author": "Octavia E. Butler"},
}


class Books:
    @expose.get
    async def index(self) -> ApplicationJson:
        return list(BOOKS.values())

    @expose.get
    async def find(self, book_id: str) -> ApplicationJson:
        book = BOOKS.get(int(book_id)) if book_id.isdigit() else None
        return book if book is not None else {"error": f"no book {book_id}"}


class Api:
    books = Books()

    @expose.get
    async def index(self) -> ApplicationJson:
        return {"service": "books", "endpoints": ["/api/books", "/api/books/find/<id>"]}


class Root:
    api = Api()


app = create_app(Root)
