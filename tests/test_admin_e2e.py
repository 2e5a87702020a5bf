"""The admin socket end to end, against real servers (issue 12's acceptance lines).

- ``/metrics``, read with prometheus_client's own parser, counts exactly the
  requests the test sent, across prefork workers recycled by MAX_REQUESTS;
- ``POST /config/save`` round-trips through a restart;
- ``POST /apps`` with ``git`` clones a bare repository the test makes (no
  network) and the route answers from the clone, in each model.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import ADMIN, TOKEN, Admin, admin_port, wait_until
from support.gitrepo import make_bare

MODELS = ["async", "fork", "prefork"]
BLOG = (
    "async def app(scope, receive, send):\n"
    "    if scope['type'] != 'http':\n"
    "        return\n"
    "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
    "    await send({'type': 'http.response.body', 'body': b'blog from git'})\n"
)


def model_args(model: str) -> tuple[str, ...]:
    return ("--model", model, "--workers", "2") if model == "prefork" else ("--model", model)


def metrics(admin: Admin) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> labels -> value, as prometheus_client's parser reads /metrics."""
    answer = admin.call("GET", "/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def requests_total(found: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> float:
    return sum(found.get("qactuar_requests_total", {}).values())


def test_metrics_count_every_request_across_worker_recycles(spawn_qactuar: Any) -> None:
    server = spawn_qactuar("basic:hello", "--model", "prefork", "--workers", "2",
                           "--max-requests", "25", "--no-access-log", *ADMIN,
                           "--admin-token", TOKEN)
    admin = Admin(admin_port(server))
    server.wait_for_log("serving", count=2)
    sent = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(120):  # new connections, so both workers serve and recycle
            assert client.get(server.url + "/", headers={"connection": "close"}).text == (
                "Hello, world!")
            sent += 1
    found = wait_until(lambda: (lambda f: f if requests_total(f) == sent else None)(
        metrics(admin)), 15, what=f"{sent} requests in /metrics")
    assert found["qactuar_requests_total"] == {
        (("method", "GET"), ("route", "/"), ("status_class", "2xx")): sent}
    assert found["qactuar_process_recycles_total"][()] >= 2
    buckets = found["qactuar_request_duration_seconds_bucket"]
    assert buckets[(("le", "+Inf"), ("route", "/"))] == sent
    assert found["qactuar_request_duration_seconds_count"][(("route", "/"),)] == sent
    assert found["qactuar_processes"][(("role", "worker"),)] == 2
    # the counters never went backwards while workers were replaced
    for _ in range(5):
        assert requests_total(metrics(admin)) == sent


def test_config_save_round_trips_through_a_restart(spawn_qactuar: Any, tmp_path: Any) -> None:
    path = tmp_path / "qactuar.json"
    path.write_text(json.dumps({"KEEP_ALIVE_TIMEOUT": 5, "HEADERS": ["x-site: one"]}))
    args = ("basic:hello", "--model", "async", "--config", str(path), *ADMIN)
    env = {"QACTUAR_ADMIN_TOKEN": TOKEN}
    first = spawn_qactuar(*args, env=env)
    admin = Admin(admin_port(first))
    answer = admin.apply_config({"KEEP_ALIVE_TIMEOUT": 7.5, "HEADERS": ["x-site: two"]})
    assert answer.status_code == 200, answer.text
    assert httpx.get(first.url + "/").headers["x-site"] == "two"
    saved = admin.call("POST", "/config/save")
    assert saved.status_code == 200, saved.text
    first.stop()
    written = json.loads(path.read_text())
    assert written["KEEP_ALIVE_TIMEOUT"] == 7.5 and written["HEADERS"] == ["x-site: two"]
    assert TOKEN not in path.read_text()  # from the environment: never written
    assert json.loads((tmp_path / "qactuar.json.bak").read_text())["KEEP_ALIVE_TIMEOUT"] == 5
    # nothing else written beside them (the servers' logs are qactuar-N.log)
    assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".log")) == [
        "qactuar.json", "qactuar.json.bak"]

    second = spawn_qactuar(*args, env=env)
    config = Admin(admin_port(second)).call("GET", "/config").json()["config"]
    assert config["KEEP_ALIVE_TIMEOUT"] == 7.5 and config["HEADERS"] == ["x-site: two"]
    assert httpx.get(second.url + "/").headers["x-site"] == "two"


@pytest.mark.parametrize("model", MODELS)
def test_git_install_mounts_an_app_from_a_local_bare_repository(
    spawn_qactuar: Any, tmp_path: Any, model: str,
) -> None:
    bare = make_bare(tmp_path, blog=BLOG)
    apps_dir = tmp_path / "installed"
    server = spawn_qactuar("basic:hello", *model_args(model), "--no-access-log", *ADMIN,
                           "--admin-token", TOKEN, "--admin-allow-install",
                           "--apps-dir", str(apps_dir))
    admin = Admin(admin_port(server))
    if model == "prefork":
        server.wait_for_log("serving", count=2)
    answer = admin.call("POST", "/apps", {"git": bare, "ref": "main", "route": "/blog",
                                          "app": "blog:app"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["source"] == "git"
    assert os.path.isfile(apps_dir / "blogapp" / "blog.py")
    with httpx.Client(timeout=10) as client:
        assert client.get(server.url + "/blog/").text == "blog from git"
        assert client.get(server.url + "/").text == "Hello, world!"
    assert sorted((a["route"], a["source"]) for a in admin.apps()) == [
        ("/", "config"), ("/blog", "git")]
    # without the permission: refused, nothing cloned
    other = spawn_qactuar("basic:hello", *model_args(model), "--no-access-log", *ADMIN,
                          "--admin-token", TOKEN, "--apps-dir", str(tmp_path / "none"))
    refused = Admin(admin_port(other)).call(
        "POST", "/apps", {"git": bare, "ref": "main", "route": "/blog", "app": "blog:app"})
    assert refused.status_code == 403
    assert not os.path.exists(tmp_path / "none")
