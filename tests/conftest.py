"""Shared fixtures over tests/support (the helpers themselves live there).

``serve(app, **settings)`` runs a real ``qactuar.Server`` (the async model's
core) in a background thread with its own event loop and yields a
``RunningServer`` (``.url``, ``.port``, ``.server``); ``spawn_qactuar(*args)``
runs the ``qactuar`` command as a process on a held port and stops it, and
its process group, by PID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
from support import Spawned, serve_qactuar, start_qactuar


@pytest.fixture
def serve() -> Callable[..., Any]:
    """``with serve(app, **settings) as srv: httpx.get(srv.url)`` (support.serve_qactuar)."""
    return serve_qactuar


@pytest.fixture
def spawn_qactuar(tmp_path: Any, request: Any) -> Iterator[Callable[..., Spawned]]:
    """Start ``qactuar <args>`` in tests/apps' directory (support.start_qactuar); all are stopped.

    The port is held (``--fd``) unless the arguments need qactuar to bind (an
    address, ``--reuse-port``) or ``listen="own"`` says so. ``wait``
    (default) returns once it logged ``Listening on``. A test module's
    ``QACTUAR_ARGS`` go before the arguments. ``launcher`` is the module run
    with ``-m``: ``failing_fork`` makes chosen fork() calls fail
    (``FAIL_FORKS`` in ``env``). Stopping a server sweeps its process group;
    one that does not stop within the bound fails the test.
    """
    started: list[Spawned] = []

    def spawn(*args: str, wait: bool = True, env: dict[str, str] | None = None,
              cwd: str | None = None, launcher: str = "qactuar",
              listen: Literal["held", "own", "auto"] = "auto",
              ready: str = "Listening on") -> Spawned:
        log_path = str(tmp_path / f"qactuar-{len(started)}.log")
        spawned = start_qactuar(
            *getattr(request.module, "QACTUAR_ARGS", ()), *args, log_path=log_path,
            listen=listen, ready=ready if wait else None, env=env, cwd=cwd, launcher=launcher)
        started.append(spawned)
        return spawned

    yield spawn
    failures = []
    for spawned in started:
        try:
            spawned.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, failures


@pytest.fixture(scope="module")
def browser() -> str:
    """Debian's chromium (installed by scripts/install-test-tools when missing and root)."""
    from browser import chromium

    path = chromium()
    if path is None:
        pytest.skip("chromium is not installed and cannot be as an ordinary user: "
                    "sudo apt-get install chromium")
    return path

