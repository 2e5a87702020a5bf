"""The fork model's zygote on its own: a real zygote process, its children, its reports."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import NoReturn

from qactuar.models.zygote import ZygoteLink, start_zygote


def _exit_at_once(sock: socket.socket, ahead: bool = False) -> NoReturn:
    os._exit(0)


def test_a_burst_of_spawns_larger_than_the_control_socket_holds_loses_none() -> None:
    # a thousand requests at once (MAX_PROCESSES of that order): the control
    # socket's buffer fills and the rest wait their turn in the parent; each
    # was lost before, and its request with it
    count = 1000

    async def main() -> tuple[int, set[int], int]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        forked: set[int] = set()
        exited: list[int] = []

        def on_forked(token: int, pid: int, pidfd: int) -> None:
            os.close(pidfd)
            forked.add(token)

        def on_exited(link: ZygoteLink, pid: int, status: int, user: float, system: float,
                      rss: int) -> None:
            exited.append(status)
            if len(exited) == count and not done.done():
                done.set_result(None)

        pid, ctl = start_zygote([], _exit_at_once, os.fork)
        link = ZygoteLink(pid, ctl, on_forked, lambda *a: None, on_exited, lambda link: None)
        try:
            for token in range(count):
                ours, theirs = socket.socketpair()
                ours.close()
                assert link.spawn(token, theirs)
            await asyncio.wait_for(done, 60)
        finally:
            link.retire()
            status = await asyncio.wait_for(link.gone, 10)
        return len(exited), forked, status

    exited, forked, status = asyncio.run(main())
    assert exited == count and forked == set(range(count))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0  # it left once told to
