"""The plain-ASGI pieces the admin app is made of: a request, an answer, a refusal.

No framework: the admin app is served by qactuar's own core, and these few
helpers are all it needs (``Request`` reads the scope and a capped body,
``Answer`` is sent in one go, ``Refusal`` is an error answer raised from
anywhere below a handler).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..asgi.types import Receive, Scope, Send
from ..logs import printable

__all__ = ["JSON", "Answer", "Refusal", "Request", "json_answer"]

JSON = "application/json"


class Refusal(Exception):
    """An error answer: ``status`` and a reason the client reads in ``{"error": ...}``."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None,
                 **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []
        self.extra = extra

    def answer(self) -> Answer:
        return json_answer(self.status, {"error": self.reason, **self.extra}, self.headers)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, send: Send, head_only: bool = False) -> None:
        headers = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", str(len(self.body)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


def json_answer(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Answer:
    body = json.dumps(data, sort_keys=False, allow_nan=False, default=str).encode() + b"\n"
    return Answer(status, body, JSON, headers or [])


class Request:
    """One HTTP request to the admin app: what the handlers read of it."""

    def __init__(self, scope: Scope, receive: Receive, max_body: int) -> None:
        self.scope = scope
        self.receive = receive
        self.max_body = max_body
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            # a repeated field keeps its first value (Host, Origin, Authorization...)
            self.headers.setdefault(name, raw_value.decode("latin-1"))
        #: "token" or "dashboard session" once the guard let it in
        self.identity = ""
        #: handed to the dashboard's app, which answers itself
        self.delegated = False
        #: the session cookie's name on this admin socket (auth.cookie_name)
        self.cookie_name = "qactuar_admin"

    @property
    def client(self) -> str:
        """The peer, for logs: ``host:port``, ``[v6]:port`` or ``unix``."""
        client = self.scope.get("client")
        if not client:
            return "unix"
        host, port = client[0], client[1]
        host = f"[{host}]" if ":" in str(host) else str(host)
        return printable(f"{host}:{port}")

    @property
    def address(self) -> str:
        """The peer's address alone (the key of its failure count)."""
        client = self.scope.get("client")
        return str(client[0]) if client else "unix"

    async def body(self) -> bytes:
        """The whole body; 413 past ``max_body`` (read no further)."""
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise Refusal(413, f"the body is larger than {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Refusal(400, "the client left before its body was read")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise Refusal(413, f"the body is larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json(self) -> Any:
        """The body as JSON; 400 naming the problem when it is not."""
        raw = await self.body()
        if not raw.strip():
            raise Refusal(400, "the body is empty: a JSON object was expected")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "the body is not UTF-8 text: a JSON object was expected") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise Refusal(
                400, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        except RecursionError:
            raise Refusal(400, "the JSON is nested too deeply") from None

    async def json_object(self) -> dict[str, Any]:
        data = await self.json()
        if not isinstance(data, dict):
            raise Refusal(400, f"expected a JSON object, got {type(data).__name__}")
        return data
