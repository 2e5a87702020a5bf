"""legacy alias: remove when test_fork_model.py and test_async_model.py migrate to
support.RawClient (``RawClient.over(sock)``, ``.response()``, ``encode_request``,
``response.text_header(name)``)."""

from __future__ import annotations

import socket

from support import RawClient, encode_request


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class RawConnection(RawClient):
    """support.RawClient over ``sock``, answering responses with headers as a dict."""

    def __init__(self, sock: socket.socket, timeout: float = 10) -> None:
        super().__init__(0, timeout, sock=sock)

    def read_response(self) -> RawResponse:  # type: ignore[override]
        response = self.response(interim=True)  # as rawhttp did: a 100 is a response
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in response.headers}
        return RawResponse(response.status, headers, response.body)

    def request(self, path: str, method: str = "GET", body: bytes = b"",  # type: ignore[override]
                headers: tuple[tuple[str, str], ...] = ()) -> RawResponse:
        self.send(encode_request(path, method, body, headers))
        return self.read_response()

    encode = staticmethod(encode_request)
