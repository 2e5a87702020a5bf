"""Change on the fly (issue 12) in the async and fork models: the live objects of
qactuar/admin/live_async.py driven in a real server process through the
test-only control of tests/apps/live_launcher.py, as the admin socket drives
them. Apps: tests/apps/live_apps.py (markers in ``LIVE_NOTES``).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Load, Spawned, wait_until

from qactuar.admin.live_async import SlotPool

APPS = {"/steady": "live_apps:steady"}


class Refused(Exception):
    """The live object raised AdminError(status, reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Live:
    """A qactuar started by live_launcher, and its live object's methods."""

    def __init__(self, spawned: Spawned, control: str, notes: Path) -> None:
        self.spawned = spawned
        self.control = control
        self.notes = notes
        self.url = spawned.url

    def call(self, op: str, **args: Any) -> Any:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(self.control)
            sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                assert chunk, f"the control closed without answering {op}: {data!r}"
                data += chunk
        answer = json.loads(data)
        if "error" in answer:
            raise Refused(*answer["error"])
        return answer["ok"]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=20, **kwargs)

    def note(self, name: str) -> Path:
        return self.notes / name


@pytest.fixture
def live(spawn_qactuar: Callable[..., Spawned], tmp_path: Path) -> Callable[..., Live]:
    def start(model: str, *args: str, apps: dict[str, str] | None = None,
              env: dict[str, str] | None = None) -> Live:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"APPS": apps or APPS}))
        notes = tmp_path / "notes"
        notes.mkdir(exist_ok=True)
        control = str(tmp_path / "control.sock")
        if model == "fork" and "--request-timeout" not in args:
            args = ("--request-timeout", "30", *args)  # a slow request is held for a while
        spawned = spawn_qactuar("--model", model, "--config", str(config), "--no-access-log",
                                *args, launcher="live_launcher",
                                env={"LIVE_CONTROL": control, "LIVE_NOTES": str(notes),
                                     **(env or {})})
        return Live(spawned, control, notes)

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
        info = server.call("mount", route="/blog", target="live_apps:blog")
        # its lifespan startup ran before it took traffic, and the very next
        # request is served by it
        assert server.note("startup-blog").exists()
        response = server.get("/blog/x")
        assert (response.status_code, response.text) == (200, "blog /blog")
        served = load.count
        wait_until(lambda: load.count >= served + 20 or load.failed, what="20 more on /steady")
    assert load.failed == []
    assert info == {"route": "/blog", "target": "live_apps:blog", "source": "admin", "extra": {}}
    assert server.call("apps") == [
        {"route": "/steady", "target": "live_apps:steady", "source": "config", "extra": {}},
        info,
    ]
    with pytest.raises(Refused) as again:
        server.call("mount", route="/blog/", target="live_apps:shop")
    assert (again.value.status, again.value.reason) == (409, "/blog is mounted already")


@pytest.mark.parametrize("model", ["async", "fork"])
def test_unmount_lets_a_request_in_flight_finish_then_shuts_the_app_down(live, model):
    server = live(model, apps={**APPS, "/blog": "live_apps:blog"})
    slow, answer = _in_thread(lambda: server.get("/blog/slow"))
    try:
        wait_until(server.note("inflight-blog").exists, what="the slow request in the app")
        unmounting, unmounted = _in_thread(lambda: server.call("unmount", route="/blog"))
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
    assert unmounted == [None]
    assert server.note("shutdown-blog").read_text() == str(server.spawned.pid)
    assert [a["route"] for a in server.call("apps")] == ["/steady"]
    with pytest.raises(Refused) as gone:
        server.call("unmount", route="/blog")
    assert (gone.value.status, gone.value.reason) == (404, "nothing is mounted at /blog")


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
    ("live_apps", 400, "'live_apps': expected 'module:attribute', e.g. 'myapp:app'"),
    # made in the server, this import would end it
    ("exits_at_import:app", 422,
     "'exits_at_import:app': importing it ended the process (exit status 1)"),
]


def test_a_mount_that_fails_leaves_routing_untouched(live):
    server = live("async")
    before = server.call("apps")
    for target, status, reason in FAILED_MOUNTS:
        with pytest.raises(Refused) as refused:
            server.call("mount", route="/blog", target=target)
        assert (refused.value.status, refused.value.reason) == (status, reason), target
        assert server.call("apps") == before
        assert server.get("/blog/").status_code == 404
        assert server.get("/steady/").status_code == 200
    server.call("mount", route="/blog", target="live_apps:blog")
    assert server.get("/blog/").text == "blog /blog"


@pytest.mark.parametrize("phase", ["import", "startup"])
def test_a_mount_that_hangs_is_abandoned_while_the_server_serves_on(live, tmp_path, phase):
    hang, notes = tmp_path / "hang", tmp_path / "hang-notes"
    hang.touch()
    # the import hangs in a new process: its timeout leaves it time to start on a loaded machine
    timeout = {"import": ("LIVE_IMPORT_TIMEOUT", "3"), "startup": ("LIVE_STARTUP_TIMEOUT", "1")}
    server = live("async", env={f"HANG_{phase.upper()}": str(hang), "HANG_NOTES": str(notes),
                                **dict([timeout[phase]])})
    try:
        with Load([server.url + "/steady/"]) as load:
            with pytest.raises(Refused) as refused:
                server.call("mount", route="/hang", target="hanging_start:app")
            assert server.get("/hang/").status_code == 404
    finally:
        hang.unlink()
    assert load.failed == []
    assert refused.value.status == 422
    phase_, pid = notes.read_text().split()
    assert phase_ == phase
    if phase == "import":
        # the import hung in the subprocess, never in the server
        assert refused.value.reason == "'hanging_start:app': importing it took more than 3s"
        assert int(pid) != server.spawned.pid
    else:
        assert refused.value.reason == "app at /hang: lifespan startup took more than 1s"
        assert int(pid) == server.spawned.pid


@pytest.mark.parametrize("model", ["async", "fork"])
def test_live_config_is_checked_and_applies_from_the_next_connection(live, model):
    server = live(model)
    small = b"x" * 2000
    assert httpx.post(server.url + "/steady/", content=small).status_code == 200
    assert server.call("apply_config", changes={"MAX_BODY_BYTES": 1000}) is None
    assert httpx.post(server.url + "/steady/", content=small).status_code == 413
    assert httpx.post(server.url + "/steady/", content=small[:900]).status_code == 200
    with pytest.raises(Refused) as fixed:
        server.call("apply_config", changes={"PORT": 9, "MAX_BODY_BYTES": 5})
    refusal = (fixed.value.status, fixed.value.reason)
    assert refusal == (409, "PORT: cannot change without a restart")
    with pytest.raises(Refused) as bad:
        server.call("apply_config", changes={"MAX_BODY_BYTES": -1})
    assert bad.value.status == 400
    assert "MAX_BODY_BYTES" in bad.value.reason
    # neither refused change was applied
    assert httpx.post(server.url + "/steady/", content=small[:900]).status_code == 200


def test_fork_request_timeout_applies_to_the_next_request(live):
    server = live("fork", "--request-timeout", "20", "--check-process-interval", "0.05")
    assert server.get("/steady/sleep?2.5").status_code == 200
    server.call("apply_config", changes={"REQUEST_TIMEOUT": 0.3})
    assert server.get("/steady/sleep?2.5").status_code == 504
    assert server.get("/steady/").status_code == 200


def test_fork_max_processes_shrinks_and_grows_while_children_run(live):
    server = live("fork", apps={**APPS, "/blog": "live_apps:blog"})
    server.call("apply_config", changes={"MAX_PROCESSES": 1, "MAX_WEBSOCKETS": 0})
    slow, slow_answer = _in_thread(lambda: server.get("/blog/slow"))
    try:
        wait_until(server.note("inflight-blog").exists, what="the slow request in its child")
        # the one child is busy: this request waits for a slot...
        waiting, waiting_answer = _in_thread(lambda: server.get("/steady/"))
        wait_until(lambda: server.call("waiting") == 1, what="a request waiting for a slot")
        assert waiting_answer == []
        # ...and gets one as soon as the limit grows, while the slow one is still held
        server.call("apply_config", changes={"MAX_PROCESSES": 2})
        waiting.join(10)
        assert [r.status_code for r in waiting_answer] == [200]
        assert slow_answer == []
    finally:
        server.note("release-blog").touch()
    slow.join(20)
    assert [r.status_code for r in slow_answer] == [200]
    with pytest.raises(Refused) as too_many:
        server.call("apply_config", changes={"MAX_PROCESSES": 70000})
    refusal = (too_many.value.status, too_many.value.reason)
    assert refusal == (409, "MAX_PROCESSES above 65536 needs a restart")


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
    server = live("async")
    server.call("mount", route="/v", target="versioned:app", app_dir=str(folder))
    assert server.get("/v/").text == "one"
    module.write_text(source % "two")
    with Load([server.url + "/v/", server.url + "/steady/"]) as load:
        server.call("reload")
        assert server.get("/v/").text == "two"
    assert load.failed == []
    module.write_text("raise ImportError('half-written')\n")
    with pytest.raises(Refused) as broken:
        server.call("reload")
    assert broken.value.status == 422
    assert "half-written" in broken.value.reason
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
