"""``python -m failing_seqpacket <qactuar args>``: the SOCK_SEQPACKET socketpair() calls
numbered in $FAIL_SEQPACKET (counted per process, inherited across fork) raise ENFILE."""
import os
import socket
import sys

from qactuar.cli import main

_real = socket.socketpair
_failing = {int(n) for n in os.environ.get("FAIL_SEQPACKET", "").split(",") if n}
_calls = [0]


def _socketpair(family=socket.AF_UNIX, type=socket.SOCK_STREAM, proto=0):
    if type == socket.SOCK_SEQPACKET:
        _calls[0] += 1
        if _calls[0] in _failing:
            raise OSError(23, "Too many open files in system")
    return _real(family, type, proto)


if __name__ == "__main__":
    socket.socketpair = _socketpair
    sys.argv = ["qactuar", *sys.argv[1:]]
    main()
