"""Change on the fly: what ``PATCH /config``, ``POST/DELETE /apps`` and ``POST /reload``
do in each process model. The model-side classes are ``AsyncLive`` and
``ForkLive`` (``live_async.py``) and ``PreforkLive`` (``live_prefork.py``);
this module holds what they share: which keys are live, the new config, the
import check in a subprocess, fresh imports.

Live keys (``PATCH /config``; any other key is a 409 naming it)
------------------------------------------------------------------

============================  =====  =====  =======  =========================================
Key                           async  fork   prefork  How it takes effect
============================  =====  =====  =======  =========================================
HEADER_TIMEOUT,               yes    yes    yes      async, fork: the next deadline a
KEEP_ALIVE_TIMEOUT,                                  connection sets (the sweep's interval
BODY_TIMEOUT, SEND_TIMEOUT                           follows); prefork: new workers (a
                                                     graceful replacement, as SIGHUP)
GRACEFUL_TIMEOUT              yes    yes    yes      the next stop or unmount
MAX_URL_BYTES,                yes    yes    yes      from the next connection (its parser);
MAX_HEADER_BYTES,                                    prefork: new workers
MAX_HEADER_COUNT,
MAX_BODY_BYTES
LIMIT_CONCURRENCY,            yes    yes    yes      the next request; prefork: new workers
HEALTH_PATH, HEADERS,
DATE_HEADER, SERVER_HEADER,
ROOT_PATH, PROXY_HEADERS,
FORWARDED_ALLOW_IPS
WS_COMPRESSION,               yes    yes    yes      the next WebSocket session
WS_MAX_MESSAGE_BYTES,
WS_MAX_QUEUE,
WS_PING_INTERVAL,
WS_PING_TIMEOUT
LOG_LEVEL, ACCESS_LOG         yes    yes    yes      at once (logging set up again, as SIGHUP
                                                     does); fork: children forked after;
                                                     prefork: master now, new workers
REQUEST_TIMEOUT,              -      yes    -        the parent's next sweep / fork: a child
CHECK_PROCESS_INTERVAL,                              already running is timed by the new value
BODY_BUFFER_BYTES,
MAX_WEBSOCKETS
MAX_PROCESSES                 -      yes    -        at once: more children may start, or no
                                                     new one until the count is under the new
                                                     limit (up to ``SLOT_CAPACITY`` without a
                                                     restart)
WORKERS                       -      -      yes      the pool grows or shrinks as SIGTTIN /
                                                     SIGTTOU do (workers still starting go
                                                     first, then the oldest, drained)
MAX_REQUESTS,                 -      -      yes      workers started from now on
MAX_REQUESTS_JITTER
WORKER_TIMEOUT                -      -      yes      the master at once; the workers are
                                                     replaced if their heartbeat pace changes
============================  =====  =====  =======  =========================================

``fork`` with WORKERS is served by the prefork master: the prefork column,
and the fork column's keys too, taken by new parents (a graceful replacement).

Not live (a restart, or the config file and SIGHUP where it applies):
the sockets (HOST, PORT, UDS, BIND, FD, UDS_MODE, BACKLOG, REUSE_PORT), MODEL,
LOOP, TLS (SSL_*: the listening sockets' context is made at start), PROXY_PROTOCOL
(the balancer in front changes with it), LIFESPAN, APPS, APP_DIR, FACTORY and
PRELOAD (the apps: ``/apps`` and ``/reload`` change them), LOGS (a logging
dictionary may open files and sockets), GATHER_PROC_STATS, RELOAD*, ADMIN_* and
APPS_DIR (the admin socket itself), and the three settings qactuar 0.1 kept.

A change never drops a request: a request in flight finishes under the values
it started with.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
import os
import site
import sys
import sysconfig
from collections.abc import Callable, Iterable
from typing import Any

from ..asgi.types import ASGIApp
from ..checks import check_config
from ..config import Config, ConfigError
from ..importer import AppImportError, load_app, use_app_dir
from ..logs import setup_logging
from .backend import AdminError

__all__ = [
    "ASYNC_LIVE",
    "FORK_LIVE",
    "FORK_POOL_LIVE",
    "PREFORK_LIVE",
    "PREFORK_MASTER_KEYS",
    "check_import",
    "import_fresh",
    "route_key",
    "updated_config",
    "wait_for",
]

logger = logging.getLogger("qt_server")

#: Keys the server core reads per request or connection (``ServerState.apply``).
CORE_LIVE = frozenset({
    "HEADER_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "BODY_TIMEOUT", "SEND_TIMEOUT", "GRACEFUL_TIMEOUT",
    "MAX_URL_BYTES", "MAX_HEADER_BYTES", "MAX_HEADER_COUNT", "MAX_BODY_BYTES",
    "LIMIT_CONCURRENCY", "HEALTH_PATH", "HEADERS", "DATE_HEADER", "SERVER_HEADER", "ROOT_PATH",
    "PROXY_HEADERS", "FORWARDED_ALLOW_IPS",
    "WS_COMPRESSION", "WS_MAX_MESSAGE_BYTES", "WS_MAX_QUEUE", "WS_PING_INTERVAL",
    "WS_PING_TIMEOUT",
    "LOG_LEVEL", "ACCESS_LOG",
})  # fmt: skip
ASYNC_LIVE = CORE_LIVE
FORK_LIVE = CORE_LIVE | {
    "REQUEST_TIMEOUT", "CHECK_PROCESS_INTERVAL", "BODY_BUFFER_BYTES", "MAX_WEBSOCKETS",
    "MAX_PROCESSES", "FORK_AHEAD",
}  # fmt: skip
#: What the prefork master reads itself: no worker is replaced for these.
PREFORK_MASTER_KEYS = frozenset({"WORKERS", "MAX_REQUESTS", "MAX_REQUESTS_JITTER",
                                 "WORKER_TIMEOUT"})
PREFORK_LIVE = CORE_LIVE | PREFORK_MASTER_KEYS
#: ``fork`` with WORKERS (a master over fork-model parents): the fork keys too,
#: which new parents take (a graceful replacement, as any worker key).
FORK_POOL_LIVE = PREFORK_LIVE | FORK_LIVE

#: Seconds an app's import may take (in the subprocess, then here).
IMPORT_TIMEOUT = 30.0
#: Seconds an app's lifespan startup may take when it is mounted.
STARTUP_TIMEOUT = 30.0
#: The source ``Config.source_of`` names for a value changed through the admin socket.
SOURCE = "admin socket"


def updated_config(config: Config, changes: dict[str, Any], live: frozenset[str]) -> Config:
    """A copy of ``config`` (its file and sources kept) with ``changes``, checked as at
    start-up; AdminError 409 for a key that is not live, 400 for a value refused."""
    fixed = sorted(key for key in changes if key.upper() not in live)
    if fixed:
        raise AdminError(409, f"{', '.join(fixed)}: cannot change without a restart")
    new = copy.deepcopy(config)
    try:
        new.update(changes, SOURCE)
        check_config(new)
    except ConfigError as exc:
        raise AdminError(400, str(exc)) from None
    return new


def apply_logging(old: Config, new: Config) -> None:
    """Set logging up again if LOG_LEVEL or ACCESS_LOG changed; AdminError 400 if it fails."""
    if (old.LOG_LEVEL, old.ACCESS_LOG) == (new.LOG_LEVEL, new.ACCESS_LOG):
        return
    try:
        setup_logging(new.LOGS, new.LOG_LEVEL, new.ACCESS_LOG)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        setup_logging(old.LOGS, old.LOG_LEVEL, old.ACCESS_LOG)
        raise AdminError(400, f"logging set-up failed: {exc}") from None


def changed_keys(old: Config, new: Config, keys: Iterable[str]) -> list[str]:
    return [key for key in keys if getattr(old, key) != getattr(new, key)]


def log_changes(old: Config, new: Config, keys: Iterable[str]) -> None:
    """At debug level: the admin app logs each change at info, with who made it."""
    for key in changed_keys(old, new, keys):
        logger.debug("Admin: %s %r -> %r", key, getattr(old, key), getattr(new, key))


def route_key(route: str) -> str:
    """The Router's key for ``route``: "/blog/" and "/blog" are "/blog", "/" is ""."""
    if not route.startswith("/"):
        raise AdminError(400, f"route {route!r} must start with '/'")
    return route.rstrip("/")


def shown(key: str) -> str:
    return key or "/"


def check_target(target: str) -> None:
    module, sep, attr = target.partition(":")
    if not (module and sep and attr):
        raise AdminError(400, f"{target!r}: expected 'module:attribute', e.g. 'myapp:app'")


#: Run by ``check_import``: import the target as the server would, exit 0 if it is an app.
_CHECK = """
import sys
from qactuar.importer import AppImportError, load_app, use_app_dir
target, app_dir = sys.argv[1], sys.argv[2]
use_app_dir(app_dir)
try:
    load_app(target)
except AppImportError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


async def check_import(target: str, app_dir: str = "", timeout: float | None = None) -> None:
    """Import ``target`` in a subprocess first (from ``app_dir`` first when given), so
    that an import that fails, hangs or crashes never touches the server;
    AdminError 422 with the reason."""
    check_target(target)
    timeout = IMPORT_TIMEOUT if timeout is None else timeout
    env = dict(os.environ)
    # the subprocess imports qactuar and the apps as this process does
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHECK, target, app_dir,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AdminError(422, f"{target!r}: importing it took more than {timeout:g}s") from None
    if proc.returncode == 0:
        return
    lines = err.decode(errors="replace").strip().splitlines()
    code = proc.returncode or 0
    if code < 0:
        reason = f"{target!r}: importing it killed the process (signal {-code})"
    elif code == 2 and lines:
        reason = lines[-1]
    elif lines:
        reason = f"{target!r}: importing it failed: {lines[-1]}"
    else:
        reason = f"{target!r}: importing it ended the process (exit status {code})"
    raise AdminError(422, reason)


_INSTALLED = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def _user_roots(app_dirs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Where the apps' own modules live, and what is never re-imported (Python, qactuar)."""
    roots = [os.path.abspath(d) + os.sep for d in (*app_dirs, os.getcwd()) if d]
    paths = sysconfig.get_paths()
    never = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    never.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # qactuar
    never.add(site.getusersitepackages())
    return roots, [os.path.abspath(p) + os.sep for p in never]


def forget_app_modules(app_dirs: Iterable[str]) -> list[str]:
    """Take the apps' own modules (those under ``app_dirs`` or the cwd, not Python's
    nor an installed package's) out of ``sys.modules``, so that the next import
    reads their files afresh. Objects already imported keep the old modules.

    ``importlib.reload`` is not used: it changes the module objects the
    running apps use, in place, while they serve.
    """
    roots, never = _user_roots(app_dirs)
    gone = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        path = os.path.abspath(path)
        if any(part in path for part in _INSTALLED):
            continue  # an installed package, in a virtualenv under the app's folder too
        if any(path.startswith(r) for r in roots) and not any(path.startswith(n) for n in never):
            del sys.modules[name]
            gone.append(name)
    return gone


def import_fresh(targets: dict[str, str], app_dir: str, app_dirs: Iterable[str],
                 fresh: bool) -> dict[str, ASGIApp]:
    """Import each ``targets`` value (in a thread: it may be slow), ``app_dir`` first
    on sys.path; with ``fresh``, the apps' modules are read anew. AdminError 422."""
    importlib.invalidate_caches()  # files written since the server started
    if app_dir:
        use_app_dir(app_dir)
    if fresh:
        forget_app_modules([app_dir, *app_dirs])
    apps = {}
    for key, target in targets.items():
        try:
            apps[key] = load_app(target)
        except AppImportError as exc:
            raise AdminError(422, str(exc)) from None
    return apps


async def wait_for(done: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``done`` on the loop until true (True) or ``timeout`` seconds (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True
