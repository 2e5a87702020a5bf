"""A server process for the flat-memory upload test.

``python upload_server.py SERVER PORT_FILE`` serves a ``@stream_request_body``
handler through ``wrap()`` under the named ASGI server (a driver of
servers.py) on a free port, writes the port and a newline to PORT_FILE, and
runs until its stdin closes.  The handler answers with the bytes it
received and the process's resident memory before and at most during the
upload, sampled from /proc.
"""

from __future__ import annotations

import asyncio
import os
import sys

import tornado.web

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # servers, and tests/ for support

from servers import DRIVERS  # type: ignore[import-not-found]  # noqa: E402
from support import bind_free_port  # noqa: E402

from qactuar.tornado_bridge import wrap  # noqa: E402

SAMPLE_EVERY = 1 << 20


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.received = 0
        self.next_sample = SAMPLE_EVERY
        self.baseline = rss_kib()
        self.peak = self.baseline

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received >= self.next_sample:
            self.next_sample += SAMPLE_EVERY
            self.peak = max(self.peak, rss_kib())

    def put(self) -> None:
        self.peak = max(self.peak, rss_kib())
        self.write(
            {"received": self.received, "baseline_kib": self.baseline, "peak_kib": self.peak}
        )


async def main(server_name: str, port_file: str) -> None:
    sock, port = bind_free_port()
    driver = DRIVERS[server_name]()
    await driver.start(wrap([("/upload", UploadHandler)]), sock)
    with open(port_file, "w") as fh:
        fh.write(f"{port}\n")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await driver.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
