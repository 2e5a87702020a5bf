"""A server process for the flat-memory upload test.

``python upload_server.py SERVER`` serves a ``@stream_request_body`` handler
through ``wrap()`` under the named ASGI server on a free port, prints the
port, and runs until its stdin closes.  The handler answers with the bytes it
received and the process's resident memory before and at most during the
upload, sampled from /proc.
"""

from __future__ import annotations

import asyncio
import os
import sys

import tornado.web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from servers import DRIVERS, bind_free_port  # type: ignore[import-not-found]  # noqa: E402

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


async def main(server_name: str) -> None:
    sock, port = bind_free_port()
    driver = DRIVERS[server_name]()
    await driver.start(wrap([("/upload", UploadHandler)]), sock)
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await driver.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
