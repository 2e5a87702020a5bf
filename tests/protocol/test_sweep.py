"""The server's own sweep (``Server.main_loop``) on a loop whose time is driven by hand.

The other protocol tests call the sweep themselves; these run the real
loop: it wakes every ``min(1 s, HEADER_TIMEOUT / 4, KEEP_ALIVE_TIMEOUT / 4)``,
advances the coarse clock and times connections out, so a deadline is met
at most one interval late; a stop wakes it at once.
"""

from __future__ import annotations

import asyncio

from protocol_harness import Clock, FakeTransport, ok_app, run, settle

from qactuar import Config, Server
from qactuar.server.protocol import HTTPProtocol


def server(clock: Clock, **settings: float) -> Server:
    config = Config()
    config.update({"LIFESPAN": "off", **settings}, "test")
    srv = Server(ok_app, config)
    srv.state.monotonic = clock
    srv.state.tick()
    return srv


def connect(srv: Server) -> FakeTransport:
    conn = HTTPProtocol(srv.state)
    transport = FakeTransport(conn)
    conn.connection_made(transport)
    return transport


async def step_until_closed(clock: Clock, transport: FakeTransport, step: float,
                            limit: float) -> float:
    """Advance time by ``step`` until ``transport`` is closed; how long that took."""
    began = clock.now
    while not transport.closed and clock.now - began < limit:
        clock.now += step
        await settle()
    assert transport.closed, f"still open after {limit} s"
    return clock.now - began


def test_the_sweep_closes_a_silent_connection_within_a_quarter_timeout_late() -> None:
    async def scenario(clock: Clock) -> None:
        srv = server(clock, HEADER_TIMEOUT=2, KEEP_ALIVE_TIMEOUT=8)  # sweeps every 0.5 s
        loop_task = asyncio.get_running_loop().create_task(srv.main_loop())
        await settle()
        transport = connect(srv)
        took = await step_until_closed(clock, transport, 0.05, 10)
        assert 2.0 <= took <= 2.0 + 0.5 + 0.05
        srv.should_exit = True
        await settle()
        assert loop_task.done()

    run(scenario)


def test_the_sweep_runs_at_least_every_second_whatever_the_timeouts() -> None:
    async def scenario(clock: Clock) -> None:
        srv = server(clock, HEADER_TIMEOUT=100, KEEP_ALIVE_TIMEOUT=100)
        loop_task = asyncio.get_running_loop().create_task(srv.main_loop())
        await settle()
        for _ in range(5):
            clock.now += 1.0
            await settle()
            assert srv.state.clock == clock.now  # the coarse clock follows
        srv.should_exit = True
        await settle()
        assert loop_task.done()

    run(scenario)


def test_a_stop_wakes_the_sweep_at_once() -> None:
    async def scenario(clock: Clock) -> None:
        srv = server(clock)  # default timeouts: a sweep a second
        loop_task = asyncio.get_running_loop().create_task(srv.main_loop())
        await settle()
        srv.should_exit = True  # no time passes
        await settle()
        assert loop_task.done() and loop_task.exception() is None

    run(scenario)
