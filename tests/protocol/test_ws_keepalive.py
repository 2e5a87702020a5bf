"""WS_PING_INTERVAL and WS_PING_TIMEOUT on one WebSocket, with time driven by hand.

The client is the ``websockets`` library's sans-I/O ``ClientProtocol``: it
makes the handshake, masks its frames, parses the server's and queues a pong
for every ping. A test forwards what the client queued to the server
connection (``answer``) or drops it (a client that does not answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

from protocol_harness import Clock, FakeTransport, Harness, run, settle
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from qactuar.server.protocol import HTTPProtocol
from qactuar.websocket.pings import Pings

INTERVAL, TIMEOUT = 20.0, 10.0


class Peer:
    """A WebSocket client on a ``FakeTransport``; ``disconnects`` collects what the app saw."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.disconnects: list[dict[str, Any]] = []
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/"))
        self.conn: HTTPProtocol
        self.transport: FakeTransport
        self.conn, self.transport = h.connect()

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.append(message)
                return

    async def open(self) -> None:
        """The handshake; the app accepts and sends nothing yet."""
        events = await self.open_and_read()
        assert len(events) == 1, events

    async def open_and_read(self) -> list[Frame | Response]:
        """The handshake; the 101 and what the app sent right after it."""
        self.client.send_request(self.client.connect())
        self.answer()
        await settle()
        events = self.frames_and_response()
        assert isinstance(events[0], Response) and events[0].status_code == 101, events
        return events

    def frames_and_response(self) -> list[Frame | Response]:
        self.client.receive_data(self.transport.take())
        return list(self.client.events_received())

    def frames(self) -> list[tuple[Opcode, bytes]]:
        """The frames the server sent since the last call."""
        out = []
        for event in self.frames_and_response():
            assert isinstance(event, Frame), event
            out.append((event.opcode, bytes(event.data)))
        return out

    def answer(self) -> None:
        """Send the server what the client has queued (its pongs among it)."""
        data = b"".join(self.client.data_to_send())
        if data:
            self.conn.data_received(data)

    def drop(self) -> None:
        """Throw away what the client queued (it does not answer)."""
        self.client.data_to_send()


def peer(clock: Clock, **settings: Any) -> Peer:
    settings.setdefault("WS_PING_INTERVAL", INTERVAL)
    settings.setdefault("WS_PING_TIMEOUT", TIMEOUT)
    holder: list[Peer] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await holder[0].app(scope, receive, send)

    p = Peer(Harness(app, clock, **settings))
    holder.append(p)
    return p


def test_a_ping_goes_out_every_interval_while_pongs_come_back() -> None:
    async def scenario(clock: Clock) -> None:
        p = peer(clock)
        await p.open()
        payloads = []
        for _ in range(5):  # 100 s
            await p.h.advance(INTERVAL - 0.01)
            assert p.frames() == []
            await p.h.advance(0.01)
            [(opcode, payload)] = p.frames()
            assert opcode is Opcode.PING
            payloads.append(payload)
            await p.h.advance(TIMEOUT - 0.01)  # the pong comes just in time
            p.answer()
            await settle()
        assert len(set(payloads)) == 5  # a fresh payload each time
        assert not p.transport.closed and p.disconnects == []

    run(scenario)


def test_no_pong_within_the_ping_timeout_closes_1011_and_the_app_sees_1006() -> None:
    async def scenario(clock: Clock) -> None:
        p = peer(clock)
        await p.open()
        await p.h.advance(INTERVAL)
        assert [opcode for opcode, _ in p.frames()] == [Opcode.PING]
        p.drop()
        await p.h.advance(TIMEOUT - 0.01)
        assert p.frames() == [] and not p.transport.closed
        await p.h.advance(0.01)
        [(opcode, payload)] = p.frames()
        assert opcode is Opcode.CLOSE
        assert int.from_bytes(payload[:2], "big") == 1011
        assert payload[2:] == b"keepalive ping timeout"
        assert p.transport.closed
        assert [m["code"] for m in p.disconnects] == [1006]

    run(scenario)


def test_a_pong_with_another_payload_does_not_count() -> None:
    async def scenario(clock: Clock) -> None:
        p = peer(clock)
        await p.open()
        await p.h.advance(INTERVAL)
        assert [opcode for opcode, _ in p.frames()] == [Opcode.PING]
        p.drop()
        p.client.send_pong(b"not yours")
        p.answer()
        await p.h.advance(TIMEOUT)
        assert [opcode for opcode, _ in p.frames()] == [Opcode.CLOSE]
        assert p.transport.closed

    run(scenario)


def test_with_no_ping_timeout_pings_go_on_unanswered() -> None:
    async def scenario(clock: Clock) -> None:
        p = peer(clock, WS_PING_TIMEOUT=0)
        await p.open()
        for _ in range(5):
            await p.h.advance(INTERVAL - 0.01)
            assert p.frames() == []
            await p.h.advance(0.01)
            assert [opcode for opcode, _ in p.frames()] == [Opcode.PING]
            p.drop()
        await p.h.advance(1000)
        assert not p.transport.closed and p.disconnects == []

    run(scenario)


def test_with_no_ping_interval_no_ping_is_sent() -> None:
    async def scenario(clock: Clock) -> None:
        p = peer(clock, WS_PING_INTERVAL=0)
        await p.open()
        for _ in range(10):
            await p.h.advance(100)
        assert p.frames() == []
        assert not p.transport.closed

    run(scenario)


def test_messages_do_not_replace_pongs() -> None:
    """Traffic is no answer: a client that sends messages but no pong is closed."""
    async def scenario(clock: Clock) -> None:
        p = peer(clock)
        await p.open()
        await p.h.advance(INTERVAL)
        assert [opcode for opcode, _ in p.frames()] == [Opcode.PING]
        p.drop()
        for _ in range(9):
            p.client.send_text(b"busy")
            p.answer()
            await p.h.advance(1)
        assert not p.transport.closed
        await p.h.advance(1)
        assert [opcode for opcode, _ in p.frames()] == [Opcode.CLOSE]

    run(scenario)


def test_a_client_that_never_answers_the_servers_close_is_dropped_by_the_keepalive() -> None:
    """The app closes and waits for its disconnect; the client never answers the close."""
    async def scenario(clock: Clock) -> None:
        p = peer(clock)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4001})
            while (message := await receive())["type"] != "websocket.disconnect":
                pass
            p.disconnects.append(message)

        p.app = app  # type: ignore[method-assign]
        await p.open_and_read()
        p.drop()  # the client's answering close frame is lost
        for _ in range(int(INTERVAL + TIMEOUT)):
            await p.h.advance(1)
        assert p.transport.closed
        assert [m["code"] for m in p.disconnects] == [1006]

    run(scenario)


def masked(opcode: Opcode, payload: bytes) -> bytes:
    """A client frame (masked), made by hand: the client protocol may be closing."""
    return Frame(opcode, payload).serialize(mask=True)


def test_a_client_that_answers_pings_but_not_the_close_stays_and_the_app_gets_its_code() -> None:
    """The keep-alive goes on in the close handshake: pongs keep the connection, the
    client's late close gives the app the code (not 1006)."""
    async def scenario(clock: Clock) -> None:
        p = peer(clock)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4001})
            while (message := await receive())["type"] != "websocket.disconnect":
                pass
            p.disconnects.append(message)

        p.app = app  # type: ignore[method-assign]
        events = await p.open_and_read()
        assert [e.opcode for e in events[1:] if isinstance(e, Frame)] == [Opcode.CLOSE]
        p.drop()  # the client's answering close is held back
        for _ in range(3):  # three rounds of ping, pong just in time
            await p.h.advance(INTERVAL)
            sent = p.transport.take()
            assert sent[:1] == b"\x89", sent  # a PING, unmasked, FIN
            payload = sent[2:]
            await p.h.advance(TIMEOUT - 0.01)
            p.conn.data_received(masked(Opcode.PONG, payload))
            await settle()
        await p.h.advance(TIMEOUT)
        assert not p.transport.closed and p.disconnects == []
        p.conn.data_received(masked(Opcode.CLOSE, (4001).to_bytes(2, "big")))
        await settle()
        assert p.transport.closed
        assert [m["code"] for m in p.disconnects] == [4001]

    run(scenario)


def test_the_servers_own_pong_is_no_event_and_does_not_fill_the_queue() -> None:
    """An app with ping events on that only sends: the keep-alive's pongs are consumed
    by the server, so no event it did not cause, and no 1011 after queue x interval."""
    async def scenario(clock: Clock) -> None:
        events: list[dict[str, Any]] = []
        queue = 4
        p = peer(clock, WS_MAX_QUEUE=queue)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept", "qactuar.ping_events": True})
            while True:
                events.append(await receive())
                if events[-1]["type"] == "websocket.disconnect":
                    return

        async def push_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept", "qactuar.ping_events": True})
            await asyncio.Event().wait()  # never receives again

        p.app = app  # type: ignore[method-assign]
        await p.open()
        for _ in range(queue + 2):
            await p.h.advance(INTERVAL)
            assert [opcode for opcode, _ in p.frames()] == [Opcode.PING]
            p.answer()
            await settle()
        p.client.send_pong(b"unsolicited")  # a pong the server did not ask for: the app's
        p.answer()
        await settle()
        assert events == [{"type": "websocket.pong", "bytes": b"unsolicited"}]
        assert not p.transport.closed

        q = peer(clock, WS_MAX_QUEUE=queue)
        q.app = push_only  # type: ignore[method-assign]
        await q.open()
        for _ in range(2 * queue + 2):
            await q.h.advance(INTERVAL)
            assert [opcode for opcode, _ in q.frames()] == [Opcode.PING]
            if q.transport.reading:  # a paused server reads no pong
                q.answer()
            else:
                q.drop()
            await settle()
        assert not q.transport.closed and q.transport.reading

    run(scenario)


def test_no_pong_is_awaited_for_a_ping_that_did_not_go_out() -> None:
    """The connection is going (no ping sent): the keep-alive does not fail it later."""
    async def scenario(clock: Clock) -> None:
        failed: list[bool] = []
        pings = Pings(INTERVAL, TIMEOUT, lambda data: False, lambda: failed.append(True))
        h = Harness(lambda *a: asyncio.sleep(0), clock)
        pings.start()
        for _ in range(int(3 * (INTERVAL + TIMEOUT))):
            await h.advance(1)
        assert failed == []

    run(scenario)
