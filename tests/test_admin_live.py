"""Change on the fly (issue 12) in the async and fork models: the admin socket's
HTTP API (POST/DELETE /apps, GET /apps, PATCH /config, POST /reload) called
with its token on a real server, which hands the changes to its live object
(qactuar/admin/live_async.py). Apps: tests/apps/live_apps.py (markers in
``LIVE_NOTES``).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    ADMIN,
    TOKEN,
    Admin,
    Load,
    RawClient,
    Spawned,
    admin_port,
    encode_request,
    refusal,
    wait_until,
)

from qactuar.admin.live_async import AsyncLive, SlotPool
from qactuar.config import Config
from qactuar.server import Server

APPS = {"/steady": "live_apps:steady"}


class Live:
    """A qactuar with its admin socket on, and its admin API."""

    def __init__(self, spawned: Spawned, notes: Path) -> None:
        self.spawned = spawned
        self.admin = Admin(admin_port(spawned))
        self.notes = notes
        self.url = spawned.url

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=20, **kwargs)

    def note(self, name: str) -> Path:
        return self.notes / name


@pytest.fixture
def live(spawn_qactuar: Callable[..., Spawned], tmp_path: Path) -> Callable[..., Live]:
    def start(model: str, *args: str, apps: dict[str, str] | None = None,
              env: dict[str, str] | None = None, launcher: str = "qactuar") -> Live:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"APPS": APPS if apps is None else apps}))
        notes = tmp_path / "notes"
        notes.mkdir(exist_ok=True)
        if model == "fork" and "--request-timeout" not in args:
            args = ("--request-timeout", "30", *args)  # a slow request is held for a while
        spawned = spawn_qactuar("--model", model, "--config", str(config), "--no-access-log",
                                *ADMIN, "--admin-token", TOKEN, *args, launcher=launcher,
                                env={"LIVE_NOTES": str(notes), **(env or {})})
        return Live(spawned, notes)

    return start


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``work`` in a thread; the list gets its result or exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("model", ["async", "fork"])
def test_a_mounted_route_answers_at_once_while_the_other_routes_serve_on(live, model):
    server = live(model)
    assert server.get("/blog/").status_code == 404
    with Load([server.url + "/steady/"]) as load:
        mounted = server.admin.mount("/blog", "live_apps:blog")
        assert mounted.status_code == 201, mounted.text
        # its lifespan startup ran before it took traffic, and the very next
        # request is served by it
        assert server.note("startup-blog").exists()
        response = server.get("/blog/x")
        assert (response.status_code, response.text) == (200, "blog /blog")
        served = load.count
        wait_until(lambda: load.count >= served + 20 or load.failed, what="20 more on /steady")
    assert load.failed == []
    info = mounted.json()
    assert info == {"route": "/blog", "target": "live_apps:blog", "source": "admin", "extra": {}}
    assert server.admin.apps() == [
        {"route": "/steady", "target": "live_apps:steady", "source": "config", "extra": {}},
        info,
    ]
    again = server.admin.mount("/blog/", "live_apps:shop")
    assert refusal(again) == (409, "/blog is mounted already")


@pytest.mark.parametrize("model", ["async", "fork"])
def test_a_lone_app_is_routed_from_the_first_mount_and_both_shut_down_at_stop(live, model):
    """One app (no APPS) is served bare until the first POST /apps mounts another
    beside it; at stop both lifespans are shut down, in the parent."""
    server = live(model, "live_apps:steady", apps={})
    assert server.note("startup-steady").exists()
    assert server.get("/x").text == "steady "
    mounted = server.admin.mount("/blog", "live_apps:blog")
    assert mounted.status_code == 201, mounted.text
    assert (server.get("/blog/x").text, server.get("/x").text) == ("blog /blog", "steady ")
    assert [a["route"] for a in server.admin.apps()] == ["/blog", "/"]
    assert not server.note("shutdown-steady").exists()
    server.spawned.stop()
    assert server.spawned.proc.returncode == 0
    pid = str(server.spawned.pid)
    assert server.note("shutdown-blog").read_text() == pid
    assert server.note("shutdown-steady").read_text() == pid


@pytest.mark.parametrize("model", ["async", "fork"])
def test_unmount_lets_a_request_in_flight_finish_then_shuts_the_app_down(live, model):
    server = live(model, apps={**APPS, "/blog": "live_apps:blog"})
    slow, answer = _in_thread(lambda: server.get("/blog/slow"))
    try:
        wait_until(server.note("inflight-blog").exists, what="the slow request in the app")
        unmounting, unmounted = _in_thread(lambda: server.admin.unmount("/blog"))
        # new requests no longer reach it, at once, while the slow one is held
        wait_until(lambda: server.get("/blog/").status_code == 404, what="/blog answered 404")
        assert server.get("/steady/").status_code == 200
        assert not server.note("shutdown-blog").exists(), "shut down with a request in flight"
        assert unmounted == []
    finally:
        server.note("release-blog").touch()
    slow.join(20)
    assert (answer[0].status_code, answer[0].text) == (200, "blog /blog")
    unmounting.join(20)
    assert [(r.status_code, r.json()) for r in unmounted] == [(200, {"unmounted": "/blog"})]
    assert server.note("shutdown-blog").read_text() == str(server.spawned.pid)
    assert [a["route"] for a in server.admin.apps()] == ["/steady"]
    gone = server.admin.unmount("/blog")
    assert refusal(gone) == (404, "nothing is mounted at /blog")


FAILED_MOUNTS = [
    ("no_such_module:app", 422, "'no_such_module:app': no module named 'no_such_module'"),
    ("live_raises:app", 422,
     "'live_raises:app': importing 'live_raises' failed: "
     "RuntimeError(\"the blog's settings are missing\")"),
    ("live_apps:not_an_app", 422,
     "'live_apps:not_an_app' is a int, not an ASGI app, a Tornado RequestHandler subclass, "
     "Application or list of URL rules"),
    ("live_apps:bad_startup", 422,
     "app at /blog: lifespan startup failed: bad: database unreachable"),
    ("live_apps", 400, "'app' must be a 'module:attribute' string"),
    ("live_apps:", 400, "'live_apps:': expected 'module:attribute', e.g. 'myapp:app'"),
    # made in the server, this import would end it
    ("exits_at_import:app", 422,
     "'exits_at_import:app': importing it ended the process (exit status 1)"),
]


def test_a_mount_that_fails_leaves_routing_untouched(live):
    server = live("async")
    before = server.admin.apps()
    for target, status, reason in FAILED_MOUNTS:
        refused = server.admin.mount("/blog", target)
        assert refusal(refused) == (status, reason), target
        assert server.admin.apps() == before
        assert server.get("/blog/").status_code == 404
        assert server.get("/steady/").status_code == 200
    assert server.admin.mount("/blog", "live_apps:blog").status_code == 201
    assert server.get("/blog/").text == "blog /blog"


@pytest.mark.parametrize("phase", ["import", "startup"])
def test_a_mount_that_hangs_is_abandoned_while_the_server_serves_on(live, tmp_path, phase):
    hang, notes = tmp_path / "hang", tmp_path / "hang-notes"
    hang.touch()
    # the import hangs in a new process: its timeout leaves it time to start on a loaded machine
    timeout = {"import": ("LIVE_IMPORT_TIMEOUT", "3"), "startup": ("LIVE_STARTUP_TIMEOUT", "1")}
    server = live("async", env={f"HANG_{phase.upper()}": str(hang), "HANG_NOTES": str(notes),
                                **dict([timeout[phase]])}, launcher="live_launcher")
    try:
        with Load([server.url + "/steady/"]) as load:
            refused = server.admin.mount("/hang", "hanging_start:app")
            assert server.get("/hang/").status_code == 404
    finally:
        hang.unlink()
    assert load.failed == []
    phase_, pid = notes.read_text().split()
    assert phase_ == phase
    if phase == "import":
        # the import hung in the subprocess, never in the server
        assert refusal(refused) == (422, "'hanging_start:app': importing it took more than 3s")
        assert int(pid) != server.spawned.pid
    else:
        assert refusal(refused) == (422, "app at /hang: lifespan startup took more than 1s")
        assert int(pid) == server.spawned.pid


@pytest.mark.parametrize("model", ["async", "fork"])
def test_live_config_is_checked_and_applies_from_the_next_connection(live, model):
    server = live(model)
    small = b"x" * 2000
    assert httpx.post(server.url + "/steady/", content=small).status_code == 200
    applied = server.admin.apply_config({"MAX_BODY_BYTES": 1000})
    assert applied.status_code == 200, applied.text
    assert applied.json()["changed"] == {"MAX_BODY_BYTES": {"old": 0, "new": 1000}}
    assert httpx.post(server.url + "/steady/", content=small).status_code == 413
    assert httpx.post(server.url + "/steady/", content=small[:900]).status_code == 200
    fixed = server.admin.apply_config({"PORT": 9, "MAX_BODY_BYTES": 5})
    assert refusal(fixed) == (409, "PORT cannot change while the server runs: restart it to "
                                   "change it")
    bad = server.admin.apply_config({"MAX_BODY_BYTES": -1})
    assert bad.status_code == 400
    assert "MAX_BODY_BYTES" in refusal(bad)[1]
    # neither refused change was applied
    assert httpx.post(server.url + "/steady/", content=small[:900]).status_code == 200
    assert server.admin.call("GET", "/config").json()["config"]["MAX_BODY_BYTES"] == 1000


@pytest.mark.parametrize("start", ["20", "0"])  # 0: no timeout at start (the sweep must still look)
def test_fork_request_timeout_applies_to_the_next_request(live, start):
    server = live("fork", "--request-timeout", start, "--check-process-interval", "0.05")
    assert server.get("/steady/sleep?2.5").status_code == 200
    assert server.admin.apply_config({"REQUEST_TIMEOUT": 0.3}).status_code == 200
    assert server.get("/steady/sleep?2.5").status_code == 504
    assert server.get("/steady/").status_code == 200


def _unread(server_port: int, client_port: int) -> int | None:
    """Bytes the server has not read yet of the connection from ``client_port``
    (its side's receive queue in /proc/net/tcp); None: no such connection."""
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (
                    server_port, client_port):
                return int(fields[4].split(":")[1], 16)
    return None


def test_fork_max_processes_shrinks_and_grows_while_children_run(live):
    server = live("fork", apps={**APPS, "/blog": "live_apps:blog"})
    applied = server.admin.apply_config({"MAX_PROCESSES": 1, "MAX_WEBSOCKETS": 0})
    assert applied.status_code == 200, applied.text
    slow, slow_answer = _in_thread(lambda: server.get("/blog/slow"))
    try:
        wait_until(server.note("inflight-blog").exists, what="the slow request in its child")
        # the one child is busy: this request waits for a slot...
        with RawClient(server.spawned.port, timeout=20) as waiting:
            waiting.send(encode_request("/steady/"))
            client_port = waiting.sock.getsockname()[1]
            # the parent read it (the request is parsed as it is read) ...
            wait_until(lambda: _unread(server.spawned.port, client_port) == 0,
                       what="the parent reading the request")
            # ... and started no child for it: the slow one is still the only one
            children = [(p["role"], p["detail"]) for p in server.admin.status()["processes"]
                        if p["role"] == "child"]
            assert children == [("child", "GET /blog/slow")]
            assert select.select([waiting.sock], [], [], 0)[0] == [], "answered without a slot"
            # ...and gets one as soon as the limit grows, while the slow one is still held
            assert server.admin.apply_config({"MAX_PROCESSES": 2}).status_code == 200
            assert waiting.response().status == 200
        assert slow_answer == []
    finally:
        server.note("release-blog").touch()
    slow.join(20)
    assert [r.status_code for r in slow_answer] == [200]
    too_many = server.admin.apply_config({"MAX_PROCESSES": 70000})
    assert refusal(too_many) == (409, "MAX_PROCESSES above 65536 needs a restart")


def test_fork_max_processes_grown_above_its_start_value_serves_and_counts(live):
    # the slots past the start-up MAX_PROCESSES had no figures block: reaping
    # their children raised, leaked the slot and lost the child's counts, and
    # the stop then waited for connections never settled (caught by review)
    server = live("fork", "--max-processes", "2")
    assert server.admin.apply_config({"MAX_PROCESSES": 8}).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: server.get("/steady/").status_code, range(48)))
    assert answers == [200] * 48
    wait_until(lambda: server.admin.status()["totals"]["requests"] == 48,
               what="the 48 requests counted")
    assert "Traceback" not in server.spawned.output(), server.spawned.output()[-3000:]


def test_fork_children_never_start_while_an_app_is_imported_in_a_thread(live, tmp_path):
    # The parent imports a mounted app in a thread; a child forked meanwhile
    # inherited the module's import lock held and hung at its own first import
    # of that module until REQUEST_TIMEOUT (504). Now no child starts during
    # the import: the request waits, then is served (found by review).
    code = tmp_path / "code"
    code.mkdir()
    marks = tmp_path / "marks"
    marks.mkdir()
    (code / "slowmod.py").write_text(
        "import os, time\n"
        f"open(os.path.join({str(marks)!r}, str(os.getpid())), 'w').close()\n"
        "time.sleep(1.5)\n")
    (code / "mounted.py").write_text(
        "import slowmod\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'mounted'})\n")
    (code / "lazy.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    import slowmod  # noqa: F401\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'lazy'})\n")
    server = live("fork", "--app-dir", str(code), "--request-timeout", "8",
                  apps={**APPS, "/lazy": "lazy:app"})
    mounting, mounted = _in_thread(lambda: server.admin.mount("/m", "mounted:app"))
    parent = str(server.spawned.pid)
    wait_until(lambda: parent in os.listdir(marks), 20, what="the import in the parent")
    lazy = server.get("/lazy/")  # sent while the parent's thread imports slowmod
    mounting.join(30)
    assert [a.status_code for a in mounted] == [201], [a.text for a in mounted]
    assert (lazy.status_code, lazy.text) == (200, "lazy")
    assert server.get("/m/").text == "mounted"


def test_reload_imports_the_apps_afresh(live, tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    module = folder / "versioned.py"
    source = (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'%s'})\n"
    )
    module.write_text(source % "one")
    server = live("async", "--app-dir", str(folder))
    assert server.admin.mount("/v", "versioned:app").status_code == 201
    assert server.get("/v/").text == "one"
    module.write_text(source % "two")
    with Load([server.url + "/v/", server.url + "/steady/"]) as load:
        reloaded = server.admin.reload()
        assert (reloaded.status_code, reloaded.json()) == (200, {"reloaded": True})
        assert server.get("/v/").text == "two"
    assert load.failed == []
    module.write_text("raise ImportError('half-written')\n")
    broken = server.admin.reload()
    assert broken.status_code == 422
    assert "half-written" in refusal(broken)[1]
    assert server.get("/v/").text == "two"


def test_slot_pool_follows_max_processes_while_children_hold_slots():
    pool = SlotPool(3, 8)
    taken = [pool.pop(), pool.pop(), pool.pop()]  # three children
    assert pool == []
    pool.resize(1)  # two of the slots in use go out of circulation as they come back
    pool.append(taken.pop())
    pool.append(taken.pop())
    assert pool == []
    pool.append(taken.pop())
    assert len(pool) == 1
    pool.resize(4)
    assert len(pool) == 4
    assert len(set(pool)) == 4


def test_a_lone_app_is_served_bare_until_something_is_mounted():
    """No Router (a scope copy, a state copy, a frame per request) until one is needed."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    server = Server(app, Config())
    first = server.lifespan
    live = AsyncLive(server, "apps:hello")
    assert (server.app, server.state.app, server.lifespan) == (app, app, first)
    router = live.router  # as POST /apps asks for it
    assert server.app is server.state.app is router
    assert [(m.prefix, m.app, m.runner) for m in router.mounts] == [("", app, first)]
    assert server.lifespan is not first
