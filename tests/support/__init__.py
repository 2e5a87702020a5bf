"""Test support: one of each helper the tests share (see each module's doc).

- ``raw``: the raw HTTP/1.1 reader (``RawClient``, ``read_until_closed``, ``exchange``);
- ``processes``: starting ``qactuar`` as a process on a held port, stopping it
  with its whole process group (``start_qactuar``, ``stop_process``, ``run_qactuar``);
- ``waiting``: the poll helper (``wait_until``);
- ``stops``: a request sent just as a graceful stop begins
  (``request_as_the_stop_begins``);
- ``load``: a steady load from client threads (``Load``);
- ``admin``: the admin socket's HTTP API of a spawned server (``Admin``, ``admin_port``);
- ``threaded``: serving an app in a thread with a driver (``serve_in_thread``,
  ``QactuarDriver``, ``serve_qactuar``).
"""

from .admin import ADMIN, TOKEN, Admin, admin_port, refusal
from .load import Load
from .processes import (
    APPS,
    ROOT,
    TESTS,
    LeftoverProcessWarning,
    Spawned,
    accepts,
    alive,
    calls_with_peak_children,
    children_of,
    fd_targets,
    fork_children,
    free_port,
    held_socket,
    model_args,
    process_group,
    qactuar_env,
    refuses,
    rss_kib,
    run_qactuar,
    start_program,
    start_qactuar,
    stop_process,
    sweep_group,
)
from .raw import (
    READ_TIMEOUT,
    RawClient,
    RawResponse,
    encode_request,
    exchange,
    read_until_closed,
    still_served,
)
from .stops import request_as_the_stop_begins
from .threaded import (
    QactuarDriver,
    RunningServer,
    Served,
    ServerDriver,
    bind_free_port,
    serve_in_thread,
    serve_qactuar,
)
from .waiting import wait_until

__all__ = [
    "ADMIN", "APPS", "Admin", "TOKEN", "admin_port", "refusal",
    "LeftoverProcessWarning", "Load", "QactuarDriver", "READ_TIMEOUT", "ROOT", "RawClient",
    "RawResponse", "RunningServer", "Served", "ServerDriver", "Spawned", "TESTS", "accepts",
    "alive", "bind_free_port", "calls_with_peak_children", "children_of", "encode_request",
    "fd_targets", "fork_children", "model_args",
    "exchange", "free_port", "held_socket", "process_group", "qactuar_env", "read_until_closed",
    "refuses", "request_as_the_stop_begins", "rss_kib", "run_qactuar", "serve_in_thread",
    "serve_qactuar", "start_program", "start_qactuar", "still_served", "stop_process",
    "sweep_group",
    "wait_until",
]
