"""Lifespan (issue 3, item 5): startup, state, failures, shutdown, LIFESPAN modes, APPS."""

from __future__ import annotations

import json
import signal

import httpx
import pytest
from apps import core  # type: ignore[import-not-found]

#: Process-level lifespan behaviour holds for the async model and the default fork model.
MODELS = pytest.mark.parametrize("model", ["async", "fork"])


@MODELS
def test_startup_runs_before_the_first_request(spawn_qactuar, model):
    # startup takes 0.5 s; a server that accepted before it finished would
    # answer this first request with no state
    proc = spawn_qactuar("--model", model, "core:slow_startup")
    report = httpx.get(proc.url + "/", timeout=5).json()
    assert report["state"]["started"] is True
    assert report["state"]["name"] == "slow-startup"


def test_state_reaches_each_request_as_a_copy(serve):
    with serve(core.tagged_root, KEEP_ALIVE_TIMEOUT=0.8) as srv:
        first = httpx.get(srv.url + "/", timeout=5).json()
        second = httpx.get(srv.url + "/", timeout=5).json()
    assert first["state"] == {"name": "root", "items": ["from-startup"], "started": True}
    # the first request set state["mutated"] on its own copy only
    assert second["state"] == first["state"]


@pytest.mark.parametrize("model", ["async", "fork", "prefork"])
def test_failed_startup_exits_3_with_the_message(spawn_qactuar, model):
    proc = spawn_qactuar("--model", model, "core:startup_fails", wait=False)
    status = proc.wait(10)
    assert status == 3  # README, Lifespan
    assert "database at db.example:5432 unreachable" in proc.output()


@MODELS
def test_shutdown_runs_on_exit(spawn_qactuar, model, tmp_path):
    marker = tmp_path / "shutdown.txt"
    proc = spawn_qactuar("--model", model, "core:tagged_root",
                         env={"QT_SHUTDOWN_FILE": str(marker)})
    assert httpx.get(proc.url + "/", timeout=5).status_code == 200
    assert not marker.exists()
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert marker.read_text() == "shutdown root\n"


def test_lifespan_off_skips_it(spawn_qactuar, tmp_path):
    marker = tmp_path / "shutdown.txt"
    proc = spawn_qactuar("core:tagged_root", "--lifespan", "off",
                         env={"QT_SHUTDOWN_FILE": str(marker)})
    report = httpx.get(proc.url + "/", timeout=5).json()
    assert not (report["state"] or {}).get("started")
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not marker.exists()


def test_lifespan_auto_tolerates_an_app_that_raises(spawn_qactuar):
    proc = spawn_qactuar("core:no_lifespan")  # LIFESPAN defaults to auto
    response = httpx.get(proc.url + "/", timeout=5)
    assert response.json() == {"served": True}
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0


@pytest.mark.parametrize("model", ["async", "fork", "prefork"])
def test_lifespan_on_refuses_an_app_that_raises(spawn_qactuar, model):
    proc = spawn_qactuar("core:no_lifespan", "--lifespan", "on", "--model", model, wait=False)
    assert proc.wait(10) == 3  # a failed startup
    assert "unsupported scope type lifespan" in proc.output()


@MODELS
def test_every_mounted_app_gets_its_own_lifespan_and_state(spawn_qactuar, model, tmp_path):
    marker = tmp_path / "shutdown.txt"
    conf = tmp_path / "apps.json"
    conf.write_text(json.dumps({"APPS": {
        "/": "core:tagged_root", "/api": "core:tagged_api", "/other": "core:tagged_other",
    }}))
    proc = spawn_qactuar("--model", model,
                         env={"QACTUAR_CONFIG": str(conf), "QT_SHUTDOWN_FILE": str(marker)})
    for path, name in (("/", "root"), ("/api/x", "api"), ("/other", "other"), ("/y", "root")):
        report = httpx.get(proc.url + path, timeout=5).json()
        assert report["app"] == name
        assert report["state"]["name"] == name, (path, report)
        assert "mutated" not in report["state"]
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert sorted(marker.read_text().splitlines()) == [
        "shutdown api", "shutdown other", "shutdown root"]


def test_a_failing_mounted_app_stops_start_up(spawn_qactuar, tmp_path):
    marker = tmp_path / "shutdown.txt"
    conf = tmp_path / "apps.json"
    conf.write_text(json.dumps({"APPS": {"/": "core:tagged_root",
                                         "/db": "core:startup_fails"}}))
    proc = spawn_qactuar(env={"QACTUAR_CONFIG": str(conf), "QT_SHUTDOWN_FILE": str(marker)},
                         wait=False)
    assert proc.wait(10) == 3
    output = proc.output()
    assert "app at /db: database at db.example:5432 unreachable" in output
    assert output.count("lifespan startup failed") == 1, output
    # the app that had started is shut down again, not abandoned
    assert marker.read_text() == "shutdown root\n"


@MODELS
def test_second_sigint_stops_a_hanging_lifespan_shutdown(spawn_qactuar, model):
    proc = spawn_qactuar("core:hangs_on_shutdown", "--model", model)
    assert httpx.get(proc.url + "/", timeout=5).status_code == 200
    proc.signal(signal.SIGINT)
    proc.wait_for_log("lifespan shutdown hangs")
    proc.signal(signal.SIGINT)
    assert proc.wait(10) == 0  # it would hang for an hour
    assert "Lifespan shutdown abandoned" in proc.output()


@MODELS
def test_sigterm_stops_a_hanging_lifespan_startup(spawn_qactuar, model):
    proc = spawn_qactuar("core:hangs_on_startup", "--model", model, wait=False)
    proc.wait_for_log("lifespan startup hangs")  # imported, in startup
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0  # it would hang for an hour
    assert "Stopped during lifespan startup" in proc.output()


@pytest.mark.parametrize("model", ["async", "fork", "prefork"])
def test_failed_shutdown_is_reported(spawn_qactuar, tmp_path, model):
    conf = tmp_path / "apps.json"
    conf.write_text(json.dumps({"APPS": {"/": "core:tagged_root", "/q": "core:shutdown_fails",
                                         "/r": "core:raises_on_shutdown"}}))
    # prefork: each of the two workers runs (and fails) its own shutdown
    workers = ["--workers", "2"] if model == "prefork" else []
    proc = spawn_qactuar("--model", model, *workers, env={"QACTUAR_CONFIG": str(conf)})
    assert httpx.get(proc.url + "/q", timeout=5).json() == {"served": True}
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 3  # as for a failed startup (README, Lifespan)
    output = proc.output()
    assert "app at /q: could not flush the queue" in output
    assert "app at /r: RuntimeError('exploded during shutdown')" in output
    failures = 2 if model == "prefork" else 1
    assert output.count("lifespan shutdown failed") == failures, output
