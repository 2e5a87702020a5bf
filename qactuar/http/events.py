"""The events the request parser produces: a head, body bytes, the end of a message."""

from __future__ import annotations

from typing import Final

__all__ = ["END_OF_MESSAGE", "Event", "RequestHead"]


class _EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


#: Marks the end of one request's body.
END_OF_MESSAGE: Final = _EndOfMessage()


class RequestHead:
    """A complete request line and header section."""

    __slots__ = (
        "method",
        "raw_path",
        "path",
        "query_string",
        "http_version",
        "headers",
        "keep_alive",
        "expect_continue",
        "upgrade",
        "has_body",
    )

    def __init__(
        self,
        method: str,
        raw_path: bytes,
        path: str,
        query_string: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
        has_body: bool,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.path = path
        self.query_string = query_string
        self.http_version = http_version
        #: Field names lower-cased, values as sent, in order.
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        #: The ``Upgrade`` field's value (lower-cased) when the client asked
        #: to switch protocols, else None.
        self.upgrade = upgrade
        self.has_body = has_body

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.raw_path!r} HTTP/{self.http_version}>"


Event = RequestHead | bytes | _EndOfMessage
