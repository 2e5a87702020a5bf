"""Fixtures for the Tornado bridge's tests: real servers, real sockets, httpx."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from .servers import DRIVERS, Serve, serve_in_thread


@pytest.fixture(params=sorted(DRIVERS))
def server_name(request: pytest.FixtureRequest) -> str:
    """Each ASGI server the bridge is tested under."""
    return str(request.param)


@pytest.fixture
def serve(server_name: str) -> Serve:
    """``with serve(asgi_app) as base_url:`` serves the app on 127.0.0.1."""

    def _serve(app: Any) -> AbstractContextManager[str]:
        return serve_in_thread(DRIVERS[server_name](), app)

    return _serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    import threading

    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"test left threads running: {leaked}"
