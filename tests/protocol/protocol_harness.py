"""Protocol-level tests: the server core's connections driven by hand, time included.

As uvicorn's ``tests/protocols`` and Hypercorn's ``tests/protocol`` do, a
connection is given a ``FakeTransport`` that records what it writes and
whether it was closed, and bytes are fed to it directly. Time is the test's:

- the server's coarse clock (``ServerState.clock``, which HEADER_TIMEOUT and
  KEEP_ALIVE_TIMEOUT deadlines are set from) is read from
  ``ServerState.monotonic``, which a ``Clock`` replaces; ``sweep()`` runs what
  the server's periodic sweep runs (``tick`` then ``sweep``);
- timers (``loop.call_later``: WebSocket pings, lingering close) run on a
  ``ClockLoop``, an asyncio loop whose ``time()`` is that same ``Clock``.

Nothing here sleeps: ``Clock.advance`` moves time, ``settle`` lets the loop
run what is due (including the application's task).
"""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from qactuar import Config
from qactuar.asgi.types import ASGIApp
from qactuar.server.protocol import HTTPProtocol
from qactuar.server.server import ServerState

CLIENT = ("127.0.0.1", 50000)
T = TypeVar("T", bound="FakeTransport")
SERVER = ("127.0.0.1", 8000)


class Clock:
    """Monotonic time that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class ClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is a ``Clock``: a timer fires once the clock passes it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(selectors.DefaultSelector())
        self.clock = clock

    def time(self) -> float:
        return self.clock.now


class FakeTransport(asyncio.Transport):
    """Records writes and the close; ``close()`` reports connection_lost on the next turn.

    Unless ``buffered`` says bytes wait for the client: then, as a real
    transport, only ``abort()`` ends it.
    """

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        #: Bytes written after close() (a real transport drops them).
        self.after_close = bytearray()
        self.closed = False
        self.lost = False
        #: ``abort()`` was called (buffered bytes dropped).
        self.aborted = False
        self._lost_reported = False
        self.reading = True
        self.eof_written = False
        #: What ``get_write_buffer_size`` says (a test plays a client not reading).
        self.buffered = 0
        self._sock: socket.socket | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":  # the fork model's parent notes its descriptor
            if self._sock is None:
                self._sock = socket.socket()
            return self._sock
        return {"peername": CLIENT, "sockname": SERVER}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            self.after_close += data
        else:
            self.written += data

    def take(self) -> bytes:
        """What was written since the last ``take``."""
        data = bytes(self.written)
        self.written.clear()
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if not self.buffered:  # else it waits for the client to read them
                self._report_lost()

    def abort(self) -> None:
        self.aborted = self.closed = True
        self._report_lost()

    def _report_lost(self) -> None:
        if not self._lost_reported:
            self._lost_reported = True
            asyncio.get_running_loop().call_soon(self._lost)

    def _lost(self) -> None:
        self.lost = True
        if self._sock is not None:
            self._sock.close()
        self.protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """As asyncio's transports: over the new mark, the protocol's writing pauses now."""
        if high is not None and self.buffered > high and not self.lost:
            assert isinstance(self.protocol, asyncio.Protocol)
            self.protocol.pause_writing()


class Harness:
    """One server state (settings as for ``Config``), its clock, and connections to it."""

    def __init__(self, app: ASGIApp, clock: Clock, **settings: Any) -> None:
        settings.setdefault("LIFESPAN", "off")
        config = Config()
        config.update(settings, "test")
        self.config = config
        self.clock = clock
        self.state = ServerState(app, config)
        self.state.monotonic = clock
        self.state.tick()

    def connect(self, state: ServerState | None = None,
                transport: Callable[[HTTPProtocol], T] = FakeTransport,  # type: ignore[assignment]
                ) -> tuple[HTTPProtocol, T]:  # fmt: skip
        """A new connection; ``transport``: a FakeTransport subclass to record it."""
        conn = HTTPProtocol(state or self.state)
        made = transport(conn)
        conn.connection_made(made)
        return conn, made

    def sweep(self) -> None:
        """What the server's periodic sweep does: read the clock, time connections out."""
        self.state.tick()
        self.state.sweep()

    async def advance(self, seconds: float) -> None:
        """Move time on, sweep, and let the loop run what fell due."""
        self.clock.now += seconds
        self.sweep()
        await settle()


async def settle(turns: int = 20) -> None:
    """Let the loop run what is ready (tasks, call_soon, due timers) a few turns."""
    for _ in range(turns):
        await asyncio.sleep(0)


def run(test: Callable[[Clock], Awaitable[None]]) -> None:
    """Run ``test(clock)`` on a ``ClockLoop``; its tasks are cancelled at the end."""
    clock = Clock()
    loop = ClockLoop(clock)
    try:
        loop.run_until_complete(test(clock))
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


def status_of(data: bytes) -> int:
    """The status code of the response at the start of ``data`` (0: none)."""
    if not data.startswith(b"HTTP/1.1 "):
        return 0
    return int(data[9:12])


def header_lines(data: bytes) -> list[bytes]:
    """The lower-cased header lines of the response head at the start of ``data``."""
    head = data.partition(b"\r\n\r\n")[0]
    return [line.lower() for line in head.split(b"\r\n")[1:]]


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 "ok" to every request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
