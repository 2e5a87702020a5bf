"""The descriptors a fork-model zygote closes at once, kept by the parent.

The listeners, every client's socket, the pidfds, the relays' socketpairs
and the parent's spooled request bodies: a zygote forked from the parent
(at start, and again after a change of apps or config) closes them all
first thing (``zygote._run``), so that no child holds a client's socket or
another request's body. The parent keeps their numbers in one sorted array,
up to date as connections open and close, so that a zygote reads them from
one compact array instead of walking the parent's connection objects.
Every number in it is open in the parent.
"""

from __future__ import annotations

import bisect
from array import array

from ..server.protocol import HTTPProtocol

__all__ = ["ChildFds"]


class ChildFds:
    """Mixed into ``ForkServer``: ``child_closes`` and the hooks that keep it."""

    def init_child_fds(self) -> None:
        #: Descriptors a child closes at once; sorted.
        self.child_closes = array("i")
        self._client_fds: dict[HTTPProtocol, int] = {}
        self._listeners: list[int] = []

    def list_listeners(self, fds: list[int]) -> None:
        self._listeners = fds
        for fd in fds:
            bisect.insort(self.child_closes, fd)

    def unlist_listeners(self) -> None:
        """The listeners close now: their numbers may soon name other files."""
        for fd in self._listeners:
            self.child_closes.remove(fd)
        self._listeners = []

    def _opened(self, conn: HTTPProtocol) -> None:
        assert conn.transport is not None
        fd = self._client_fds[conn] = int(conn.transport.get_extra_info("socket").fileno())
        bisect.insort(self.child_closes, fd)

    def _handshaking(self, fd: int, started: bool) -> None:
        # a TLS client's socket is a child's to close from accept on, not
        # only from its handshake's end (HTTPProtocol's on_open): else a child
        # forked meanwhile holds it open after the parent drops the client
        if started:
            bisect.insort(self.child_closes, fd)
        else:
            self.child_closes.remove(fd)

    def _closed(self, conn: HTTPProtocol) -> None:
        fd = self._client_fds.pop(conn, None)
        if fd is not None:
            self.child_closes.remove(fd)
