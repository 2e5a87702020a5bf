"""The admin socket of a spawned qactuar, as a client sees it (``admin_port``, ``Admin``).

A server started with ``ADMIN`` and ``--admin-token TOKEN`` logs
"Admin socket on http://127.0.0.1:PORT"; ``admin_port`` waits for that line.
``Admin(port)`` calls its HTTP API with the bearer token (httpx, one request
a call, no retry): ``mount``, ``unmount``, ``apps``, ``apply_config``,
``reload``, ``status`` return the ``httpx.Response`` as it came.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from .processes import Spawned

TOKEN = "s3cret-admin-token-for-tests"
ADMIN = ("--admin-enabled", "--admin-host", "127.0.0.1", "--admin-port", "0")
_ADMIN_LINE = re.compile(r"Admin socket on http://127\.0\.0\.1:(\d+)")


def admin_port(server: Spawned) -> int:
    """The admin port the server logged (waits for the line)."""
    found = _ADMIN_LINE.search(server.wait_for_log("Admin socket on http://"))
    assert found is not None
    return int(found.group(1))


class Admin:
    """The admin HTTP API on 127.0.0.1:``port``, called with ``token``."""

    def __init__(self, port: int, token: str = TOKEN, timeout: float = 90.0) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, self.url + path, json=body, timeout=self.timeout,
                             headers={"authorization": f"Bearer {self.token}"})

    def mount(self, route: str, app: str) -> httpx.Response:
        return self.call("POST", "/apps", {"route": route, "app": app})

    def unmount(self, route: str) -> httpx.Response:
        return self.call("DELETE", "/apps/" + route.lstrip("/"))

    def apps(self) -> list[dict[str, Any]]:
        answer = self.call("GET", "/apps")
        assert answer.status_code == 200, answer.text
        apps: list[dict[str, Any]] = answer.json()["apps"]
        return apps

    def apply_config(self, changes: dict[str, Any]) -> httpx.Response:
        return self.call("PATCH", "/config", changes)

    def reload(self) -> httpx.Response:
        return self.call("POST", "/reload")

    def status(self) -> dict[str, Any]:
        answer = self.call("GET", "/status")
        assert answer.status_code == 200, answer.text
        status: dict[str, Any] = answer.json()
        return status


def refusal(answer: httpx.Response) -> tuple[int, str]:
    """An error answer's status and its ``{"error": ...}`` reason."""
    return answer.status_code, answer.json()["error"]
