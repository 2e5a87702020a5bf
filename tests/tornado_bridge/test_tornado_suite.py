"""Tornado's own web_test, routing_test and auth_test, served through `wrap()`.

Each Tornado test case is one pytest test, run with its application served
by an ASGI server (see `tornado_suite`).  The cases that cannot hold over
ASGI are listed in `EXPECTED_FAILURES`, each with its reason; they are
strict xfails, so one that starts passing must leave the list.
"""

from __future__ import annotations

import unittest
from dataclasses import dataclass

import pytest
import tornado.testing
import tornado.web

from .servers import DRIVERS
from .tornado_suite import bridged_http_server, case_ids, run_case

SUITE_MODULES = ("web_test", "routing_test", "auth_test", "websocket_test")
# Servers that run Tornado's suites (the core adds "qactuar").
SUITE_SERVERS = ("qactuar", "uvicorn", "hypercorn")


@dataclass(frozen=True)
class _Expected:
    reason: str
    # The servers it fails under (None: all of them).
    servers: tuple[str, ...] | None = None
    # False for cases that would only hang until Tornado's 5 s test timeout.
    run: bool = True


_NO_REASON = (
    "ASGI has no reason phrase: the server writes its own for the status code "
    "(qactuar writes Tornado's through its qactuar.http.response.reason extension)"
)
_OTHERS = ("uvicorn", "hypercorn")
_NO_SILENT_ABORT = (
    "ASGI has no way for an app to drop a broken response silently: Tornado closes "
    "the stream; the server logs the incomplete response (an unexpected log)"
)
_NO_PING = (
    "ASGI carries no ping or pong frames: the server answers and sends them itself, "
    "so on_ping/on_pong are never called and websocket_ping_interval is the server's "
    "(qactuar carries them through its qactuar.websocket.ping extension)"
)
_NO_CLIENT_CLOSE_CODE = (
    "Hypercorn does not pass the client's close code and reason on in "
    "websocket.disconnect, so on_close cannot see them"
)

# Tornado test cases that cannot hold over ASGI, each with its reason.
EXPECTED_FAILURES: dict[str, _Expected] = {
    "web_test.StatusReasonTest.test_status": _Expected(
        _NO_REASON + "; and status 682 is refused (ASGI servers only write 100-599)",
        servers=_OTHERS,
    ),
    "web_test.StatusReasonTest.test_header_injection": _Expected(
        _NO_REASON + " (the test expects Tornado's 'Unknown' in place of a bad one)",
        servers=_OTHERS,
    ),
    "web_test.StatusReasonTest.test_reason_xss": _Expected(
        _NO_REASON + " (the test expects Tornado's 'Unknown' in place of a bad one)",
        servers=_OTHERS,
    ),
    "web_test.RaiseWithReasonTest.test_raise_with_reason": _Expected(
        "status 682 with reason 'Foo': ASGI servers write only 100-599 and no reason "
        "(qactuar writes both through its qactuar.http.response.reason extension)",
        servers=_OTHERS,
    ),
    "web_test.IncorrectContentLengthTest.test_content_length_too_high": _Expected(
        _NO_SILENT_ABORT, servers=("uvicorn", "qactuar")
    ),
    "web_test.IncorrectContentLengthTest.test_content_length_too_low": _Expected(
        _NO_SILENT_ABORT, servers=("uvicorn", "qactuar")
    ),
    "web_test.PatchMethodTest.test_other": _Expected(
        "the server's httptools parser refuses the non-standard method OTHER (400)",
        servers=("uvicorn", "qactuar"),
    ),
    "web_test.UnimplementedNonStandardMethodsTest.test_unimplemented_other": _Expected(
        "the server's httptools parser refuses the non-standard method OTHER (400)",
        servers=("uvicorn", "qactuar"),
    ),
    "web_test.CrossOriginProtectionBeforePrepareTest.test_websocket_upgrade_header_not_checked": (
        _Expected(
            "the server takes a GET with Upgrade: websocket as a websocket handshake and "
            "refuses it itself (no Sec-WebSocket-Key: 400) before any app is called; qactuar "
            "serves an incomplete handshake as the plain GET it also is (RFC 9110 section 7.8)",
            servers=_OTHERS,
        )
    ),
    "websocket_test.ServerPeriodicPingTest.test_server_ping": _Expected(
        _NO_PING, servers=_OTHERS, run=False
    ),
    "websocket_test.ClientPeriodicPingTest.test_client_ping": _Expected(
        _NO_PING, servers=_OTHERS, run=False
    ),
    "websocket_test.ManualPingTest.test_manual_ping": _Expected(
        _NO_PING, servers=_OTHERS, run=False
    ),
    "websocket_test.FloodTest.test_pong_most_recent_ping": _Expected(
        "the test watches Tornado's own pong writer (it patches "
        "WebSocketProtocol13._write_frame); over ASGI the server answers every ping itself "
        "(RFC 6455 section 5.5.2) and the handler writes no pong frames (under qactuar "
        "on_ping is called, through the qactuar.websocket.ping extension; under other "
        "servers not even that)",
        run=False,
    ),
    "websocket_test.ClientOnlyCompressionTest.test_message_sizes": _Expected(
        "permessage-deflate is negotiated by the ASGI server: it compresses although the "
        "handler's get_compression_options() is None (qactuar lets the bridge decline it "
        "through its qactuar.websocket.compression extension)",
        servers=_OTHERS,
    ),
    "websocket_test.DefaultCompressionTest.test_message_sizes": _Expected(
        "qactuar sends messages under 64 bytes uncompressed on a deflate connection (RFC "
        "7692 allows it; deflating them costs CPU and saves no bytes); the test counts the "
        "bytes of three 28-byte messages",
        servers=("qactuar",),
    ),
    "websocket_test.CompressedMessageMemoryTest.test_compression_bomb": _Expected(
        "the ASGI server decompresses messages, bounded by its own size limit "
        "(uvicorn: ws_max_size), not by websocket_max_message_size",
        servers=("uvicorn", "hypercorn"),
    ),
    "websocket_test.FloodTest.test_many_small_messages_yield": _Expected(
        "the server drops websocket frames sent in the same packet as the handshake "
        "(the same frames sent after the 101 arrive: see test_websocket.py)",
        servers=("uvicorn", "hypercorn"),
        run=False,
    ),
    "websocket_test.WebSocketTest.test_bad_websocket_version": _Expected(
        "Hypercorn refuses a handshake with an unknown Sec-WebSocket-Version itself "
        "(400) before any app is called; Tornado answers 426",
        servers=("hypercorn",),
    ),
    "websocket_test.WebSocketTest.test_client_close_reason": _Expected(
        _NO_CLIENT_CLOSE_CODE, servers=("hypercorn",)
    ),
    "websocket_test.ServerPingTimeoutTest.test_client_ping_timeout": _Expected(
        _NO_CLIENT_CLOSE_CODE, servers=("hypercorn",)
    ),
}


def _params() -> list[str]:
    return [test_id for module in SUITE_MODULES for test_id in case_ids(module)]


@pytest.fixture(params=SUITE_SERVERS)
def suite_server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> None:
    """Tornado's cases run on their own loop in this thread: nothing to check."""


@pytest.mark.parametrize("test_id", _params())
def test_tornado_case(test_id: str, suite_server: str) -> None:
    expected = EXPECTED_FAILURES.get(test_id)
    if expected is not None and expected.servers is not None:
        if suite_server not in expected.servers:
            expected = None
    if expected is not None and not expected.run:
        pytest.xfail(expected.reason)
    with bridged_http_server(DRIVERS[suite_server]):
        result = run_case(test_id)
    if result.skipped and not (result.errors or result.failures):
        pytest.skip(result.skipped[0][1])
    problems = result.errors + result.failures
    if expected is not None:
        if problems:
            pytest.xfail(expected.reason)
        pytest.fail(f"{test_id} passes under {suite_server}: remove it from EXPECTED_FAILURES")
    if problems:
        pytest.fail("\n".join(text for _, text in problems), pytrace=False)
    assert result.testsRun == 1


def test_the_suite_is_really_served_through_the_bridge(suite_server: str) -> None:
    """Guard against a vacuous harness: the handler sees the bridge's connection."""

    class Probe(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write(type(self.request.connection).__module__)

    class ProbeTest(tornado.testing.AsyncHTTPTestCase):
        def get_app(self) -> tornado.web.Application:
            return tornado.web.Application([("/", Probe)])

        def runTest(self) -> None:
            self.assertEqual(self.fetch("/").body, b"qactuar.tornado_bridge._connection")

    result = unittest.TestResult()
    with bridged_http_server(DRIVERS[suite_server]):
        ProbeTest().run(result)
    assert result.testsRun == 1
    assert not (result.errors or result.failures), result.errors + result.failures
