"""Real proxies (nginx, HAProxy) in front of qactuar, from the templates in deploy/.

``fill(template, values)`` replaces every ``{{NAME}}`` and refuses to leave
one unfilled; ``start(argv, port, log)`` runs the proxy in the foreground
(support.start_program) and waits until it listens; ``LoopbackClient`` connects from 127.0.0.2, so
that the real client's address differs from the proxy's (127.0.0.1).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from typing import Any

import httpx
from support import ROOT, accepts, start_program

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


def start(argv: list[str], port: int, log_path: str) -> subprocess.Popen[bytes]:
    """Run ``argv`` in the foreground, in its own process group (the caller stops it with
    support.stop_process); return once it listens on ``port``."""
    return start_program(argv, log_path, lambda: accepts(port),
                         what=f"{os.path.basename(argv[0])} to listen on {port}")


def client(timeout: float = 20) -> httpx.Client:
    """An HTTP client whose connections come from 127.0.0.2."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT_ADDRESS),
                        timeout=timeout)


def connect_from_client_address(port: int, timeout: float = 10) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from 127.0.0.2."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(CLIENT_ADDRESS, 0))
