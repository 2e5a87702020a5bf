"""A 50 MiB ``@stream_request_body`` upload keeps the server's memory flat, under every driver."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import qactuar_env, stop_process, wait_until

from .servers import DRIVERS

UPLOAD_MIB = 50
# A bridge that buffered the body would grow by the whole 50 MiB.
ALLOWED_GROWTH_MIB = 16


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("server", sorted(DRIVERS))
def test_50_mib_streamed_upload_has_flat_memory(server: str, tmp_path: Path) -> None:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upload_server.py")
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, script, server, str(port_file)],
        stdin=subprocess.PIPE, env=qactuar_env(), start_new_session=True,
    )
    try:
        port = int(wait_until(
            lambda: port_file.exists() and port_file.read_text().endswith("\n")
            and port_file.read_text(), what=f"the {server} upload server's port"))
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
        assert response.status_code == 200, response.text
        result = response.json()
        assert process.stdin is not None
        process.stdin.close()  # it stops its server and exits
        assert process.wait(20) == 0
    finally:
        stop_process(process)
    assert result["received"] == UPLOAD_MIB << 20
    growth_mib = (result["peak_kib"] - result["baseline_kib"]) / 1024
    assert growth_mib < ALLOWED_GROWTH_MIB, f"server RSS grew by {growth_mib:.1f} MiB"
