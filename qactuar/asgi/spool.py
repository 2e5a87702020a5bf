"""A request body held whole before its application runs.

The fork model's parent reads a request's body before it forks (so that a
client that stalls mid-body costs the parent a descriptor and its buffer,
never a child) and keeps it here: up to ``memory_limit`` bytes in memory,
everything beyond that in an unlinked temporary file, as nginx's
``client_body_buffer_size`` does. ``HTTPCycle.receive()`` then hands the body
out in pieces of at most ``READ_CHUNK`` bytes (a larger piece as received is
split, through a memoryview), ``more_body`` true until the last.

Who fills it is told how it ended, once: ``on_done(True)`` when the body is
complete, ``on_done(False)`` when it never will be (the client left, a 413,
a body timeout, or the spool could not store it: ``error`` says why, the
disk full, a file too large or no descriptor left). ``on_file(fd, True)``
is told the descriptor of the temporary file when it is made,
``on_file(fd, False)`` just before it is closed, so that the fork model can
keep it out of other children.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable
from typing import IO

__all__ = ["READ_CHUNK", "BodySpool"]

#: Most bytes one ``read()`` joins from what was received in pieces.
READ_CHUNK = 65536


class BodySpool:
    __slots__ = ("memory_limit", "chunks", "in_memory", "size", "left", "file", "on_done",
                 "on_file", "error")

    def __init__(
        self,
        memory_limit: int,
        on_done: Callable[[bool], None] | None = None,
        on_file: Callable[[int, bool], None] | None = None,
    ) -> None:
        self.memory_limit = memory_limit
        self.chunks: deque[bytes | memoryview] = deque()
        self.in_memory = 0
        #: Bytes written in all.
        self.size = 0
        #: Bytes not read yet.
        self.left = 0
        self.file: IO[bytes] | None = None
        self.on_done = on_done
        self.on_file = on_file
        #: Why the body could not be stored (then it is dropped, and what
        #: comes after is ignored).
        self.error: OSError | None = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._write(data)
        except OSError as exc:  # ENOSPC, EFBIG, EMFILE...
            self.error = exc
            self.close()
            self.end(False)

    def _write(self, data: bytes) -> None:
        self.size += len(data)
        self.left += len(data)
        if self.file is None:
            if self.in_memory + len(data) <= self.memory_limit:
                self.chunks.append(data)
                self.in_memory += len(data)
                return
            self.file = tempfile.TemporaryFile()  # unlinked: gone with its last descriptor
            if self.on_file is not None:
                self.on_file(self.file.fileno(), True)
        self.file.write(data)

    def end(self, complete: bool) -> None:
        """The body is complete (or never will be): tell ``on_done``, once."""
        if complete and self.file is not None:
            self.file.flush()
            self.file.seek(0)
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(complete)

    def fileno(self) -> int:
        """The temporary file's descriptor; -1 while the body is all in memory."""
        return self.file.fileno() if self.file is not None else -1

    def read(self) -> bytes:
        """The next piece of the body; b"" once all of it was read."""
        chunks = self.chunks
        data: bytes | memoryview
        if chunks:
            data = chunks.popleft()
            if len(data) > READ_CHUNK:
                view = memoryview(data)
                chunks.appendleft(view[READ_CHUNK:])  # the rest, not copied
                data = view[:READ_CHUNK]
            elif chunks and len(data) < READ_CHUNK:
                pieces = [data]
                size = len(data)
                while chunks and size + len(chunks[0]) <= READ_CHUNK:
                    piece = chunks.popleft()
                    pieces.append(piece)
                    size += len(piece)
                data = b"".join(pieces)
        elif self.file is not None:
            data = self.file.read(READ_CHUNK)
        else:
            data = b""
        self.left -= len(data)
        if not self.left:
            self.close()
        return data if data.__class__ is bytes else bytes(data)

    def close(self) -> None:
        """Drop the body: memory freed, the temporary file closed (and so removed)."""
        self.chunks.clear()
        self.in_memory = 0
        self.left = 0
        if self.file is not None:
            file, self.file = self.file, None
            if self.on_file is not None:
                self.on_file(file.fileno(), False)
            file.close()
