"""A 50 MiB ``@stream_request_body`` upload keeps the server's memory flat."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

UPLOAD_MIB = 50
# A bridge that buffered the body would grow by the whole 50 MiB.
ALLOWED_GROWTH_MIB = 16


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_50_mib_streamed_upload_has_flat_memory(server: str) -> None:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upload_server.py")
    process = subprocess.Popen(
        [sys.executable, script, server],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        megabyte = b"\x00" * (1 << 20)

        def body() -> Iterator[bytes]:
            for _ in range(UPLOAD_MIB):
                yield megabyte

        response = httpx.put(
            f"http://127.0.0.1:{port}/upload",
            content=body(),
            headers={"Content-Length": str(UPLOAD_MIB << 20)},
            timeout=60,
        )
        result = response.json()
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    assert result["received"] == UPLOAD_MIB << 20
    growth_mib = (result["peak_kib"] - result["baseline_kib"]) / 1024
    assert growth_mib < ALLOWED_GROWTH_MIB, f"server RSS grew by {growth_mib:.1f} MiB"
