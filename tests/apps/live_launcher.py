"""``python -m live_launcher <qactuar args>``: qactuar as the CLI starts it, with the
model's live object (qactuar/admin/live*.py) driven over a test-only control
socket, as the admin socket will drive it.

``LIVE_CONTROL`` names a Unix socket path the server listens on (in the async
process, the fork parent, the prefork master). A client sends one JSON line
``{"op": "mount", "args": {...}}`` (op: a method of the live object, or
"waiting": the fork parent's requests waiting for a slot) and reads
one JSON line back: ``{"ok": result}`` or ``{"error": [status, reason]}`` for
an AdminError. ``LIVE_IMPORT_TIMEOUT`` and ``LIVE_STARTUP_TIMEOUT`` replace
those of qactuar.admin.live. In prefork the master's loop is not asyncio yet:
the control's loop runs while the master sleeps (``ControlledArbiter.sleep``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import os
import socket
import sys
from typing import Any

import qactuar.models.async_ as async_model
import qactuar.models.fork as fork_model
import qactuar.models.prefork as prefork_model
from qactuar.admin import live
from qactuar.admin.backend import AdminError
from qactuar.admin.live_async import AsyncLive, ForkLive
from qactuar.admin.live_prefork import PreforkLive
from qactuar.cli import main
from qactuar.models.arbiter import Arbiter
from qactuar.server import Server

CONTROL = os.environ.get("LIVE_CONTROL", "")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(value)
    return value


async def _handle(live: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    command = json.loads(await reader.readline())
    try:
        if command["op"] == "waiting":  # fork: requests waiting for a slot
            result = len(live.fork_server.waiting)
        else:
            result = getattr(live, command["op"])(**command.get("args", {}))
        if inspect.isawaitable(result):
            result = await result
        answer: dict[str, Any] = {"ok": _plain(result)}
    except AdminError as exc:
        answer = {"error": [exc.status, exc.reason]}
    writer.write(json.dumps(answer).encode() + b"\n")
    await writer.drain()
    writer.close()


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(CONTROL)
    sock.listen(8)
    return sock


_serve_with_signals = async_model.serve_with_signals


async def _serve_with_control(server: Server, sockets: list[socket.socket] | None) -> int:
    live = ForkLive(server) if isinstance(server, fork_model.ForkServer) else AsyncLive(server)
    control = await asyncio.start_unix_server(functools.partial(_handle, live), sock=_listen())
    try:
        return await _serve_with_signals(server, sockets)
    finally:
        control.close()


class ControlledArbiter(Arbiter):
    """The master, running the control's event loop whenever it sleeps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live = PreforkLive(self)
        self.control_loop = asyncio.new_event_loop()
        self.control_loop.run_until_complete(asyncio.start_unix_server(
            functools.partial(_handle, self.live), sock=_listen()))

    def sleep(self, timeout: float) -> None:
        if self.signals:
            return
        loop = self.control_loop
        woke = loop.create_future()
        loop.add_reader(self._wake_r, lambda: woke.done() or woke.set_result(None))
        try:
            loop.run_until_complete(asyncio.wait([woke], timeout=max(0.0, timeout)))
        finally:
            loop.remove_reader(self._wake_r)
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass


if __name__ == "__main__":
    live.IMPORT_TIMEOUT = float(os.environ.get("LIVE_IMPORT_TIMEOUT", live.IMPORT_TIMEOUT))
    live.STARTUP_TIMEOUT = float(os.environ.get("LIVE_STARTUP_TIMEOUT", live.STARTUP_TIMEOUT))
    async_model.serve_with_signals = _serve_with_control
    fork_model.serve_with_signals = _serve_with_control  # type: ignore[attr-defined]
    prefork_model.Arbiter = ControlledArbiter  # type: ignore[misc]
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
