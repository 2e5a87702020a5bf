"""Run Tornado's own test cases with their apps served through `wrap()`.

Tornado's `AsyncHTTPTestCase` builds the app in ``get_app()`` and serves it
with the `HTTPServer` from ``get_http_server()``.  `bridged_http_server`
replaces that server with an ASGI server (a driver from `servers`) running
``wrap(app, **httpserver_options)`` on the test's own IOLoop, on the very
socket the test case bound.  Everything else, the client and every
assertion, is Tornado's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import unittest
from collections.abc import Callable, Iterator
from typing import Any

import tornado.testing
from tornado.ioloop import IOLoop

from qactuar.tornado_bridge import wrap

from .servers import ServerDriver

# HTTPServer keyword arguments that wrap() takes under the same name.
_SAME_NAME = (
    "xheaders",
    "protocol",
    "decompress_request",
    "chunk_size",
    "max_body_size",
    "body_timeout",
    "trusted_downstream",
)
# HTTPServer keyword arguments that belong to the ASGI server, not the app.
_SERVER_SIDE = ("max_header_size", "idle_connection_timeout", "no_keep_alive", "max_buffer_size")


class _BridgedHTTPServer:
    """What AsyncHTTPTestCase uses of an HTTPServer, backed by an ASGI server."""

    def __init__(self, app: Any, options: dict[str, Any], driver: ServerDriver) -> None:
        unknown = set(options) - set(_SAME_NAME) - set(_SERVER_SIDE)
        if unknown:
            raise unittest.SkipTest(f"HTTPServer options the bridge cannot take: {unknown}")
        self._asgi_app = wrap(app, **{k: v for k, v in options.items() if k in _SAME_NAME})
        self._driver = driver

    def add_sockets(self, sockets: list[socket.socket]) -> None:
        (sock,) = sockets
        IOLoop.current().run_sync(lambda: self._driver.start(self._asgi_app, sock))

    def stop(self) -> None:
        pass  # close_all_connections, called next, stops listening too.

    async def close_all_connections(self) -> None:
        await self._driver.stop()


@contextlib.contextmanager
def bridged_http_server(driver_factory: Callable[[], ServerDriver]) -> Iterator[None]:
    """While active, every AsyncHTTPTestCase serves its app through the bridge."""

    def get_http_server(self: tornado.testing.AsyncHTTPTestCase) -> Any:
        return _BridgedHTTPServer(self._app, self.get_httpserver_options(), driver_factory())

    original = tornado.testing.AsyncHTTPTestCase.get_http_server
    tornado.testing.AsyncHTTPTestCase.get_http_server = get_http_server  # type: ignore[method-assign]
    # As tornado.test.runtests does: the access log is not under test.
    access_log = logging.getLogger("tornado.access")
    level = access_log.level
    access_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tornado.testing.AsyncHTTPTestCase.get_http_server = original  # type: ignore[method-assign]
        access_log.setLevel(level)


def case_ids(module_name: str) -> list[str]:
    """Ids ("module.Class.test") of the test cases in a tornado.test module.

    As `unittest.TestLoader.loadTestsFromModule` finds them, less Tornado's
    abstract base tests (which skip themselves when run).
    """
    module = __import__(f"tornado.test.{module_name}", fromlist=["_"])
    loader = unittest.TestLoader()
    ids: list[str] = []
    for name in dir(module):
        obj = getattr(module, name)
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        if obj.__name__ == "AbstractBaseWrapper":
            continue
        ids.extend(f"{module_name}.{name}.{method}" for method in loader.getTestCaseNames(obj))
    return ids


def run_case(test_id: str) -> unittest.TestResult:
    """Run one Tornado test case; the caller decides what its result means."""
    case = unittest.TestLoader().loadTestsFromName(f"tornado.test.{test_id}")
    result = unittest.TestResult()
    case.run(result)
    return result
