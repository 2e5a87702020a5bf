"""permessage-deflate under qactuar's rules: an exact inflate limit, short messages plain.

The ``websockets`` library checks a compressed frame's length against
``max_size``; qactuar's ``WS_MAX_MESSAGE_BYTES`` bounds the *inflated* size
instead, exactly, while inflating (so a compression bomb costs no memory and
an incompressible message of exactly the limit is still accepted).
"""

from __future__ import annotations

from websockets.exceptions import PayloadTooBig
from websockets.extensions.base import Extension
from websockets.frames import Frame, Opcode

__all__ = ["COMPRESS_MIN", "ExactInflateLimit", "wire_slack"]

#: Outgoing messages shorter than this are sent uncompressed on a deflate connection.
COMPRESS_MIN = 64


def wire_slack(limit: int) -> int:
    """How much bigger than ``limit`` a compressed frame may be on the wire.

    Deflate can expand incompressible data (stored or fixed-Huffman blocks,
    at worst about 1/8 with small zlib memory settings), so a message of
    exactly the limit may arrive as a longer compressed frame. The protocol
    checks frame lengths against ``limit + slack``; the inflated size is held
    to ``limit`` exactly (``ExactInflateLimit`` and ``MessageAssembler``).
    """
    return limit // 8 + 1024


class ExactInflateLimit(Extension):
    """A negotiated extension whose ``decode`` inflates at most the message limit.

    The protocol passes ``max_size`` = the remaining allowance including the
    wire slack; the inner decoder gets that minus the slack, and stops
    inflating there (a bomb costs no memory).
    """

    def __init__(self, inner: Extension, slack: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.slack = slack

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if max_size is None:
            return self.inner.decode(frame)
        allowed = max_size - self.slack
        if allowed > 0:
            return self.inner.decode(frame, max_size=allowed)
        # the message is at the limit already: one more inflated byte is too many
        decoded = self.inner.decode(frame, max_size=1)
        if decoded.data:
            raise PayloadTooBig(None, 0)
        return decoded

    def encode(self, frame: Frame) -> Frame:
        if frame.fin and frame.opcode is not Opcode.CONT and len(frame.data) < COMPRESS_MIN:
            # RFC 7692 lets any message go uncompressed (RSV1 clear): deflating
            # a few bytes costs CPU and saves nothing on the wire
            return frame
        return self.inner.encode(frame)
