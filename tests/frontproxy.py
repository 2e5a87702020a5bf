"""Real proxies (nginx, HAProxy) in front of qactuar, from the templates in deploy/.

``fill(template, values)`` replaces every ``{{NAME}}`` and refuses to leave
one unfilled; ``start(argv, port, log)`` runs the proxy in the foreground
and waits until it listens; ``LoopbackClient`` connects from 127.0.0.2, so
that the real client's address differs from the proxy's (127.0.0.1).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from typing import Any

import httpx
from support import ROOT

DEPLOY = os.path.join(ROOT, "deploy")
#: The test client's own address: anything in 127.0.0.0/8 is this machine.
CLIENT_ADDRESS = "127.0.0.2"


def fill(template: str, values: dict[str, Any]) -> str:
    """deploy/<template> with every {{NAME}} replaced by values[NAME]."""
    with open(os.path.join(DEPLOY, template), encoding="utf-8") as fh:
        text = fh.read()
    names = set(re.findall(r"\{\{([A-Z_0-9]+)\}\}", text))
    assert names <= set(values), f"unfilled in {template}: {sorted(names - set(values))}"
    for name in names:
        text = text.replace("{{" + name + "}}", str(values[name]))
    return text


def start(argv: list[str], port: int, log_path: str,
          timeout: float = 15) -> subprocess.Popen[bytes]:
    """Run ``argv`` in the foreground (the caller stops it by PID); return once it listens."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {fh.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"{argv[0]} did not listen on {port} within {timeout}s")


def wait_for_unix_socket(path: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"qactuar exited with {proc.returncode} before listening")
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"qactuar did not listen on {path} within {timeout}s")


def client(timeout: float = 20) -> httpx.Client:
    """An HTTP client whose connections come from 127.0.0.2."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT_ADDRESS),
                        timeout=timeout)


def connect_from_client_address(port: int, timeout: float = 10) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from 127.0.0.2."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(CLIENT_ADDRESS, 0))
