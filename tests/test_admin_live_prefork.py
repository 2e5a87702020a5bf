"""Change on the fly (issue 12) in the prefork model: the admin socket's HTTP API
(PATCH /config, POST/DELETE /apps, POST /reload) called with its token on a
real master, which hands the changes to ``PreforkLive``, under a steady load
that must see no failed request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import (
    ADMIN,
    TOKEN,
    Admin,
    Load,
    Spawned,
    admin_port,
    children_of,
    refusal,
    wait_until,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")


class Master:
    def __init__(self, spawned: Spawned, notes: Path) -> None:
        self.spawned = spawned
        self.admin = Admin(admin_port(spawned))
        self.notes = notes
        self.url = spawned.url

    def workers(self) -> set[int]:
        return set(children_of(self.spawned.pid))

    def wait_workers(self, count: int) -> set[int]:
        def settled() -> set[int] | None:
            pids = self.workers()
            return pids if len(pids) == count else None

        return wait_until(settled, what=f"{count} workers")

    def apply_config(self, changes: dict[str, object]) -> None:
        applied = self.admin.apply_config(changes)
        assert applied.status_code == 200, applied.text


@pytest.fixture
def master(spawn_qactuar: Callable[..., Spawned], tmp_path: Path) -> Callable[..., Master]:
    def start(*args: str) -> Master:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"APPS": {"/steady": "live_apps:steady"}}))
        notes = tmp_path / "notes"
        notes.mkdir()
        spawned = spawn_qactuar("--model", "prefork", "--config", str(config),
                                "--no-access-log", *ADMIN, "--admin-token", TOKEN, *args,
                                env={"LIVE_NOTES": str(notes)})
        started = Master(spawned, notes)
        started.wait_workers(int(args[args.index("--workers") + 1]))
        return started

    return start


def test_workers_resize_the_pool_without_a_failed_request(master):
    server = master("--workers", "2")
    first = server.workers()
    with Load([server.url + "/steady/"]) as load:
        server.apply_config({"WORKERS": 3})
        three = server.workers()
        assert len(three) == 3 and first < three, "one worker added, none replaced"
        served = load.count
        wait_until(lambda: load.count >= served + 20 or load.failed, what="20 more requests")
        server.apply_config({"WORKERS": 1})
        one = server.wait_workers(1)
        assert one < three
        served = load.count
        wait_until(lambda: load.count >= served + 20 or load.failed, what="20 more requests")
    assert load.failed == []
    assert "Stopping worker" in server.spawned.output()


def test_a_worker_setting_reaches_new_workers_without_a_failed_request(master):
    server = master("--workers", "2")
    old = server.workers()
    body = b"x" * 2000
    assert httpx.post(server.url + "/steady/", content=body).status_code == 200
    with Load([server.url + "/steady/"]) as load:
        server.apply_config({"MAX_BODY_BYTES": 1000})
        # it returns once the new workers serve; the old ones drain and go
        new = server.wait_workers(2)
        assert not new & old
        assert httpx.post(server.url + "/steady/", content=body).status_code == 413
        assert httpx.post(server.url + "/steady/", content=body[:900]).status_code == 200
    assert load.failed == []


def test_mount_and_unmount_replace_the_workers_and_a_failed_start_keeps_the_old(master):
    server = master("--workers", "2")
    old = server.workers()
    with Load([server.url + "/steady/"]) as load:
        refused = server.admin.mount("/bad", "live_apps:bad_startup")
        assert refusal(refused) == (
            422, "the new workers cannot start: app: lifespan startup failed: "
            "app at /bad: bad: database unreachable")
        assert old <= server.workers(), "the old workers serve on, untouched"
        # the new one still starting, if any, is stopped
        wait_until(lambda: server.workers() == old, what="only the old workers")
        # (returns once the current workers serve:) no worker was started to replace them
        server.apply_config({"WORKERS": 2})
        assert int(server.notes.joinpath("startup-steady").read_text()) in old
        assert server.workers() == old
        assert httpx.get(server.url + "/bad/").status_code == 404
        assert server.admin.mount("/blog", "live_apps:blog").status_code == 201
        assert httpx.get(server.url + "/blog/").text == "blog /blog"
        blog_workers = server.wait_workers(2)
        assert not blog_workers & old
        assert server.admin.unmount("/blog").status_code == 200
        # the workers that served it drained and ran its lifespan shutdown first
        assert not server.workers() & blog_workers
        assert int(server.notes.joinpath("shutdown-blog").read_text()) in blog_workers
        assert httpx.get(server.url + "/blog/").status_code == 404
    assert load.failed == []
    assert [a["route"] for a in server.admin.apps()] == ["/steady"]


@pytest.mark.parametrize("preload", ["--preload", "--no-preload"])
def test_reload_replaces_the_workers_with_the_apps_imported_afresh(master, tmp_path, preload):
    folder = tmp_path / "code"
    folder.mkdir()
    module = folder / "versioned_prefork.py"
    source = (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'%s'})\n"
    )
    module.write_text(source % "one")
    server = master("--workers", "2", preload, "--app-dir", str(folder))
    mounted = server.admin.mount("/v", "versioned_prefork:app")
    assert mounted.status_code == 201, mounted.text
    assert httpx.get(server.url + "/v/").text == "one"
    module.write_text(source % "two")
    with Load([server.url + "/steady/", server.url + "/v/"]) as load:
        before = server.workers()
        reloaded = server.admin.reload()
        assert (reloaded.status_code, reloaded.json()) == (200, {"reloaded": True})
        assert httpx.get(server.url + "/v/").text == "two"
        assert not server.wait_workers(2) & before
    assert load.failed == []
