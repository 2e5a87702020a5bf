"""The fork model's relay: a request served in the parent, its application in a child.

The parent keeps every connection (plain or TLS, and later each HTTP/2
stream) and runs the ordinary ``HTTPCycle`` or ``WebSocketSession`` as a
task, so HTTP framing, limits, keep-alive and the WebSocket protocol stay in
the core, unchanged. Only the *application* is replaced, by
``relay_app(spawn)``: it asks the fork model for a child (``spawn``: a slot
of ``MAX_PROCESSES``, ``REQUEST_TIMEOUT``, statistics) and exchanges the
ASGI messages with it over a socketpair, the scope first. The child
(``serve_in_child``, forked by the zygote) runs the real application on a
fresh event loop with a ``receive``/``send`` that read and write that
socketpair, then exits. Once the fork model says the child has exited, the
channel ends as soon as what it wrote is read, even if a process the app
forked still holds the child's end.

Why messages and not bytes: the child then needs no TLS state and no HTTP
parser, every protocol rule is enforced once in the parent, and an HTTP/2
stream, which is a sequence of messages too, can take the same path. Why in
``models/``: the core sees only an ASGI app; which process runs it is the
fork model's arrangement, and ``relay_app`` knows of that model only the
``spawn`` callable it is given (HTTP/2 in the fork model hands its streams
to the same ``relay_app``).

The wire: frames of a 4-byte length and a ``marshal``-ed ``(kind, payload)``
pair. ASGI messages hold dicts, bytes, str, ints, bools and lists or
tuples of header pairs, which marshal handles fastest of the standard
codecs; both ends are this program (same interpreter), so nothing untrusted
is decoded. What marshal refuses (an ``HTTPStatus``, headers in a
generator) is made plain and sent again, which costs only those messages.

Costs per request are kept off the round trip: the parent pumps
``receive()`` into the socketpair ahead of the app (as a proxy reads ahead),
at most ``_AHEAD`` messages past those the app took (the child says how many,
``_TAKEN``) and never past the socketpair's high-water mark, so an app that
does not read costs the parent no memory (the WebSocket session stops reading
its client at ``WS_MAX_QUEUE``, a body waits in its spool). A request body
is already whole in the parent when its relay starts (``fork_intake``: read,
``100 Continue`` answered and ``BODY_TIMEOUT`` applied before any child), so
no child waits on a client's upload. ``send()`` in the child returns once
the message is written (the socketpair's buffer gives back-pressure); an
error the parent's ``send()`` raised (the client left: ``OSError``; a
misuse: ``RuntimeError``) is raised by the app's next ``send()`` (the child
reads all the parent sends, so it is told even if its app never receives),
and a misuse is also raised in the parent once the child is done, so it is
logged and answered as in the other models.

What the parent makes of the child's end (``ChildLink.exited``): a crash or a
kill gives ``AppLost``, which the cycle answers ``502``/``504`` if nothing of
the response has begun, else by closing the connection; an application that
raised in the child (logged there) gives ``500`` the same way.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..asgi.cycle import APP_FAILURES, AppLost, ClientDisconnected
from ..asgi.types import ASGIApp, Message, Scope
from ..logs import printable

__all__ = ["Channel", "ChildLink", "relay_app", "serve_in_child"]

exception_logger = logging.getLogger("qt_exception")

_LENGTH = struct.Struct("!I")
# child -> parent
_SEND = 0  # payload: a message the app sent
_FAILED = 2  # the app raised (logged in the child)
# parent -> child
_RECEIVED = 3  # payload: a message receive() returned
_ERROR = 4  # payload: (client gone?, text): the parent's send() raised
_TAKEN = 5  # child -> parent; payload: how many _RECEIVED frames the app has taken
#: parent -> child, the first frame: the scope, less its "state" (the child's
#: own copy of the lifespan state is added there) and "extensions" (sent
#: apart: the child puts back its own read-only values of the same keys)
_SCOPE = 6
#: Frames queued before reading the socketpair pauses (the parent's end only).
_BACKLOG = 32
#: _RECEIVED frames the parent sends ahead of the app. The child reads all it
#: is sent (it never pauses), so an _ERROR frame reaches an app that does not
#: receive(): else one that only sends, its client gone, would never be told.
_AHEAD = 32
_DISCONNECTS = ("http.disconnect", "websocket.disconnect")


class Channel(asyncio.Protocol):
    """One end of the socketpair: frames in (``next()``), frames out (``send()``)."""

    def __init__(
        self,
        on_lost: Callable[[], None] | None = None,
        urgent: Callable[[int, Any], bool] | None = None,
        pausing: bool = True,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._frames: deque[tuple[int, Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._reading = True
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._on_lost = on_lost
        #: Sees each frame as it arrives; one it returns True for is not queued.
        self._urgent = urgent
        self._pausing = pausing
        self.lost: asyncio.Future[None] | None = None
        #: Set by ``finish()``: frames that still arrive are read and dropped.
        self._discard = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        at, size = 0, len(buffer)
        with memoryview(buffer) as view:
            while size - at >= 4:
                (length,) = _LENGTH.unpack_from(view, at)
                if size - at - 4 < length:
                    break
                frame = marshal.loads(view[at + 4 : at + 4 + length])
                at += 4 + length
                if self._discard:
                    continue
                if self._urgent is None or not self._urgent(*frame):
                    self._frames.append(frame)
        if at:
            del buffer[:at]
            self._wake()
            if len(self._frames) > _BACKLOG and self._pausing and self._reading and (
                self.transport is not None
            ):
                self._reading = False
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None  # close our end too: the other process is done

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()
        self.resume_writing()
        if self._on_lost is not None:
            on_lost, self._on_lost = self._on_lost, None
            on_lost()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def queued(self) -> int:
        return len(self._frames)

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def send(self, kind: int, payload: Any) -> None:
        """Queue a frame; raises ValueError for what cannot be made plain (``_plain``)."""
        try:
            data = marshal.dumps((kind, payload))
        except ValueError:
            data = marshal.dumps((kind, _plain(payload)))
        if not self.closing:
            assert self.transport is not None
            self.transport.write(_LENGTH.pack(len(data)) + data)

    async def drain(self) -> None:
        if self._write_paused and not self.closing:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    async def next(self) -> tuple[int, Any] | None:
        """The next frame, or None once the other end has closed."""
        while not self._frames:
            if self._eof:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        frame = self._frames.popleft()
        if not self._reading and len(self._frames) < _BACKLOG // 2 and not self.closing:
            self._reading = True
            assert self.transport is not None
            self.transport.resume_reading()
        return frame

    async def finish(self) -> None:
        """Half-close: the other end reads what we sent, then closes; we close after it.

        Closing a Unix socket with unread data in it resets the other end,
        and a process whose write fails (EPIPE) or whose read is reset loses
        whatever it had not yet read: so the end that is done sends EOF and
        reads (dropping) until the other end has closed, and only then closes.
        """
        self._discard = True
        self._frames.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if not self._reading:
                self._reading = True
                transport.resume_reading()
            transport.write_eof()  # after what is buffered
        if self.lost is not None:
            await self.lost

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


# parent side -----------------------------------------------------------------


@dataclass(slots=True)
class ChildLink:
    """A child started for one relayed request, as the process model hands it over."""

    #: The parent's end of the socketpair; the relay takes it over.
    sock: socket.socket
    #: Resolves when the child has exited: (0, "") if it ended cleanly, else
    #: the status and reason for the client (502 crash, 504 timeout...).
    exited: asyncio.Future[tuple[int, str]]
    #: Called once the parent's end is closed (the model stops listing it).
    release: Callable[[], None]


#: Starts a child for ``scope``; raises ``AppLost`` if none can be started.
Spawn = Callable[[Scope], Awaitable[ChildLink]]


def relay_app(spawn: Spawn) -> ASGIApp:
    """The ASGI app the parent runs in place of the real one: it relays to a child."""

    async def relay(scope: Scope, receive: Any, send: Any) -> None:
        link = await spawn(scope)
        loop = asyncio.get_running_loop()
        window = _Window()
        channel = Channel(link.release, urgent=window.urgent)
        try:
            await loop.connect_accepted_socket(lambda: channel, link.sock)
        except BaseException:
            link.sock.close()
            link.release()
            raise
        plain = {key: value for key, value in scope.items() if key not in _LOCAL}
        # (the core's extension values are read-only dicts, which marshal
        # refuses: sent as plain ones, the child puts its own back)
        extensions = {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in scope.get("extensions", {}).items()
        }
        channel.send(_SCOPE, (plain, extensions))
        link.exited.add_done_callback(lambda _: _end_once_read(channel, link.sock))
        pump = loop.create_task(_pump(receive, channel, window))
        failed = False
        misuse: Exception | None = None
        try:
            while (frame := await channel.next()) is not None:
                kind, payload = frame
                if kind == _SEND:
                    try:
                        await send(payload)
                    except OSError as exc:  # ClientDisconnected
                        channel.send(_ERROR, (True, str(exc)))
                    except Exception as exc:
                        channel.send(_ERROR, (False, str(exc)))
                        misuse = misuse or exc
                elif kind == _FAILED:
                    failed = True
        finally:
            pump.cancel()
            channel.close()
        status, reason = await link.exited
        if status:
            raise AppLost(status, reason)
        if failed:
            raise AppLost(500, "Internal Server Error")
        if misuse is not None:
            raise misuse

    return relay


def _end_once_read(channel: Channel, sock: socket.socket, tries: int = 500) -> None:
    """The child has exited: once what it wrote is read, the channel ends.

    A process the app forked (multiprocessing, a daemon) may hold the
    child's end open, so its end of stream may never come; but all the child
    wrote is in the socket by now. Polled on each turn of the loop while
    frames are still unread there (at most ``tries`` turns, then 10 ms
    apart: the relay may be waiting on a slow client meanwhile).
    """
    transport = channel.transport
    if transport is None or transport.is_closing() or channel._eof:
        return
    try:
        unread = bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        unread = False
    except OSError:
        unread = False
    if unread:
        loop = asyncio.get_running_loop()
        if tries:
            loop.call_soon(_end_once_read, channel, sock, tries - 1)
        else:
            loop.call_later(0.01, _end_once_read, channel, sock, 0)
        return
    channel.eof_received()
    transport.abort()  # (what the parent had still to send it matters no more)


class _Window:
    """How far the pump may run ahead of the app: ``_AHEAD`` frames past those it took."""

    def __init__(self) -> None:
        self.sent = 0
        self.taken = 0
        self._waiter: asyncio.Future[None] | None = None

    def urgent(self, kind: int, payload: Any) -> bool:
        if kind != _TAKEN:
            return False
        self.taken = payload
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def room(self) -> None:
        while self.sent - self.taken >= _AHEAD:  # (the relay cancels the pump at the end)
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


async def _pump(receive: Any, channel: Channel, window: _Window) -> None:
    """Pass every message ``receive()`` returns to the child, ahead of its asking."""
    while not channel.closing:
        await window.room()
        message = await receive()
        channel.send(_RECEIVED, message)
        window.sent += 1
        if message["type"] in _DISCONNECTS:
            return
        await channel.drain()


def _plain(value: Any) -> Any:
    """``value`` with what marshal refuses made plain: off the fast path, on its ValueError.

    Applications pass on what their framework gives them: ``HTTPStatus`` and
    other int or str enums, headers as a generator or any iterable. Every
    other model takes those as their base type, and so does the relay.
    """
    kind = type(value)
    if kind in _MARSHALLED or value is None:
        return value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, int):  # bool is in _MARSHALLED: an IntEnum or IntFlag
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)  # str() of a (str, Enum) member is its name
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, tuple):  # (a header pair, an address: tuples on the other side too)
        return tuple(_plain(item) for item in value)
    if isinstance(value, Iterable):
        return [_plain(item) for item in value]
    return value  # marshal raises ValueError: the app's send() fails as it would anywhere


_MARSHALLED = frozenset({bool, int, float, str, bytes})
#: Scope keys the child makes its own (``_SCOPE``).
_LOCAL = ("state", "extensions")


# child side --------------------------------------------------------------------


class _ChildEnd:
    """``receive``/``send`` of the real application, over the child's end.

    ``receive()`` takes the messages the parent sent ahead and says how many
    it took (``_TAKEN``, every ``_AHEAD // 2``), so a body the app does not
    read stays in the parent (a spool, or the client paused); the parent's
    errors are taken as they arrive, ahead of queued messages.
    """

    def __init__(self) -> None:
        self.scope: Scope = {}
        self.channel = Channel(urgent=self._urgent, pausing=False)
        self.error: Exception | None = None
        self.last: Message | None = None
        self.taken = 0

    def _urgent(self, kind: int, payload: Any) -> bool:
        if kind != _ERROR:
            if kind == _RECEIVED and payload["type"] == "websocket.disconnect":
                # the connection is gone (a WebSocket never half-closes): from
                # now on send() raises, as it does where the session lives
                self.error = self.error or ClientDisconnected("the connection is gone")
            return False
        gone, text = payload
        if self.error is None:
            self.error = ClientDisconnected(text) if gone else RuntimeError(text)
        return True

    async def receive(self) -> Message:
        if self.last is not None:
            return self.last  # a disconnect repeats
        frame = await self.channel.next()
        if frame is not None:
            self.taken += 1
            if not self.taken % (_AHEAD // 2):
                self.channel.send(_TAKEN, self.taken)
            message: Message = frame[1]
            if message["type"] in _DISCONNECTS:
                # the app knows its client is gone: send() raises from now on
                self.last = message
                self.error = self.error or ClientDisconnected("the client is gone")
            return message
        if self.scope["type"] == "websocket":
            self.last = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        else:
            self.last = {"type": "http.disconnect"}
        return self.last

    async def send(self, message: Message) -> None:
        if self.error is not None:
            raise self.error
        if self.channel.closing:
            raise ClientDisconnected("the connection is gone")
        self.channel.send(_SEND, message)
        await self.channel.drain()


async def serve_in_child(
    app: ASGIApp,
    sock: socket.socket,
    lifespan_state: dict[str, Any],
    extensions: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Run ``app`` for the scope the parent sends first, its messages relayed over ``sock``.

    ``lifespan_state`` and ``extensions`` (HTTP, websocket) are this
    process's own: the scope gets a copy of the state, and its extensions
    take this process's values for the keys they share (read-only dicts
    arrive as plain ones).
    """
    end = _ChildEnd()
    channel = end.channel
    await asyncio.get_running_loop().connect_accepted_socket(lambda: channel, sock)
    first = await channel.next()
    if first is None or first[0] != _SCOPE:
        return  # the parent gave up before the request began
    scope, sent = first[1]
    own = extensions[scope["type"] == "websocket"]
    scope["extensions"] = {key: own.get(key, value) for key, value in sent.items()}
    scope["state"] = lifespan_state.copy()
    end.scope = scope
    try:
        await app(scope, end.receive, end.send)
    except APP_FAILURES as exc:  # sys.exit() in the app too: the request's failure
        if not isinstance(exc, ClientDisconnected):  # the client left: nothing to log
            if scope["type"] == "websocket":
                exception_logger.error(
                    "Exception in ASGI websocket application for %s",
                    printable(scope["path"]),
                    exc_info=exc,
                )
            else:
                exception_logger.error(
                    "Exception in ASGI application for %s %s",
                    scope["method"],
                    printable(scope["path"]),
                    exc_info=exc,
                )
        channel.send(_FAILED, None)
    finally:
        # the parent reads everything, then closes: only then does the child go
        await channel.finish()
