"""A steady load: client threads requesting URLs until stopped (``Load``).

``with Load([url, ...]) as load:`` starts ``threads`` threads, each on a
keep-alive connection of its own (and ``fresh`` more opening a connection per
request), cycling over the URLs until the block ends or ``limit`` seconds
pass; it returns once ``warm`` requests were answered. ``load.failed`` lists
every answer that was not a 200 (status, or the client's exception), and
``load.count`` how many were answered 200.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence

import httpx

from .waiting import wait_until


class Load:
    def __init__(self, urls: Sequence[str], threads: int = 2, fresh: int = 1,
                 limit: float = 40.0, warm: int = 20, timeout: float = 10.0) -> None:
        self.urls = list(urls)
        self.threads = threads
        self.fresh = fresh
        self.limit = limit
        self.warm = warm
        self.timeout = timeout
        self.count = 0
        self.failed: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for i in range(self.threads + self.fresh):
            thread = threading.Thread(target=self._run, args=(i >= self.threads,), daemon=True)
            thread.start()
            self._running.append(thread)
        wait_until(lambda: self.count >= self.warm or self.failed, 15,
                   what=f"{self.warm} requests served")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(self.timeout + 5)

    def _run(self, fresh: bool) -> None:
        headers = {"connection": "close"} if fresh else {}
        deadline = time.monotonic() + self.limit
        with httpx.Client(timeout=self.timeout) as client:
            for url in itertools.cycle(self.urls):
                if self._stop.is_set() or time.monotonic() >= deadline:
                    return
                try:
                    response = client.get(url, headers=headers)
                except httpx.HTTPError as exc:
                    failure = repr(exc)
                else:
                    failure = "" if response.status_code == 200 else str(response.status_code)
                with self._lock:
                    if failure:
                        self.failed.append((url, failure))
                    else:
                        self.count += 1
