"""GET/POST /apps, DELETE /apps/{route}, POST /reload, and installing from git.

The git tests clone a bare repository the test makes on disk (no network).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from support.adminfake import TOKEN, FakeBackend, assert_no_token, serve_admin
from support.gitrepo import make_bare

from qactuar.admin.backend import AdminError
from qactuar.config import Config

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        assert_no_token(record.getMessage())


def changes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qt_server"
            and r.getMessage().startswith("admin: ") and "401" not in r.getMessage()]


def test_mount_list_unmount_and_reload(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        answer = c.post("/apps", json={"route": "/api/v2", "app": "apps.hello:app"})
        assert answer.status_code == 201
        assert answer.json() == {"route": "/api/v2", "target": "apps.hello:app",
                                 "source": "admin", "extra": {}}
        assert c.get("/apps").json() == {"apps": [answer.json()]}
        assert c.delete("/apps/api/v2").json() == {"unmounted": "/api/v2"}
        assert c.get("/apps").json() == {"apps": []}
        assert c.post("/reload").json() == {"reloaded": True}
    assert backend.calls == [("mount", ("/api/v2", "apps.hello:app", "admin", None)),
                             ("unmount", "/api/v2"), ("reload", None)]
    lines = changes(caplog)
    assert [line.split(", by ")[0] for line in lines] == [
        "admin: app apps.hello:app mounted at /api/v2", "admin: app at /api/v2 unmounted",
        "admin: apps reloaded"]
    assert all(line.split(", by ")[1].startswith("127.0.0.1:") and line.endswith("(token)")
               for line in lines)


def test_backend_refusals_keep_their_status_and_reason() -> None:
    backend = FakeBackend()
    backend.mount_error = AdminError(400, "cannot import 'nope:app': No module named 'nope'")
    with serve_admin(backend) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        answer = c.post("/apps", json={"route": "/x", "app": "nope:app"})
        assert (answer.status_code, answer.json()) == (
            400, {"error": "cannot import 'nope:app': No module named 'nope'"})
        gone = c.delete("/apps/blog")
        assert (gone.status_code, gone.json()) == (404, {"error": "no app is mounted at /blog"})


@pytest.mark.parametrize("body, words", [
    ({"app": "a:b"}, "'route' must be a string starting with '/'"),
    ({"route": "blog", "app": "a:b"}, "'route' must be a string starting with '/'"),
    ({"route": "/blog", "app": "nocolon"}, "'app' must be a 'module:attribute' string"),
    ({"route": "/blog", "app": "a:b", "branch": "x"}, "unknown field 'branch'"),
])
def test_a_bad_mount_request_is_400(body: dict[str, Any], words: str) -> None:
    backend = FakeBackend()
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", json=body, headers=AUTH)
        assert answer.status_code == 400 and answer.json()["error"] == words
    assert backend.calls == []


@pytest.fixture
def bare_repo(tmp_path: Any) -> str:
    return make_bare(tmp_path)


def installing(tmp_path: Any, allow: bool = True) -> FakeBackend:
    config = Config()
    config.update({"ADMIN_ALLOW_INSTALL": allow, "APPS_DIR": str(tmp_path / "apps")}, "test")
    return FakeBackend(config)


def test_git_install_clones_then_mounts_from_the_clone(
        tmp_path: Any, bare_repo: str, caplog: pytest.LogCaptureFixture) -> None:
    backend = installing(tmp_path)
    dest = str(tmp_path / "apps" / "blogapp")
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, timeout=60, json={
            "git": bare_repo, "ref": "main", "route": "/blog", "app": "blog:app"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["source"] == "git"
    assert backend.calls == [("mount", ("/blog", "blog:app", "git", dest))]
    assert backend.app_dir_files == [".git", "blog.py", "requirements.txt"]
    assert os.path.isfile(os.path.join(dest, "blog.py"))
    [line] = changes(caplog)
    assert line.startswith(f"admin: app blog:app from git {bare_repo!r} mounted at /blog, by ")


@pytest.mark.parametrize("userinfo", ["alice:s3cret-pw", "ghp_s3cretTOKEN0123"])
def test_a_git_urls_credentials_reach_no_log_answer_or_git_config(
        tmp_path: Any, bare_repo: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, userinfo: str) -> None:
    """A URL with a password or a token (``https://TOKEN@host``) clones (git rewrites it
    to the bare repository: no network); the clone keeps no remote and is 0700."""
    url = f"https://{userinfo}@example.invalid/blogapp.git"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{bare_repo}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", url)
    backend = installing(tmp_path)
    dest = tmp_path / "apps" / "blogapp"
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, timeout=60, json={
            "git": url, "route": "/blog", "app": "blog:app"})
        assert answer.status_code == 201, answer.text
        [line] = changes(caplog)
        assert line.startswith("admin: app blog:app from git "
                               "'https://***@example.invalid/blogapp.git' mounted at /blog")
        secret = userinfo.rpartition(":")[2]
        assert all(secret not in r.getMessage() for r in caplog.records)
        # a refused URL's answer and log: redacted too, IPv6 brackets kept
        refused = httpx.post(srv.url + "/apps", headers=AUTH, json={
            "git": f"https://{userinfo}@[::1]:9/", "route": "/x", "app": "x:app"})
        assert (refused.status_code, refused.json()) == (400, {
            "error": "no directory name can be made of the git URL 'https://***@[::1]:9/'"})
    config = (dest / ".git" / "config").read_text()
    assert secret not in config and "example.invalid" not in config
    assert "[remote" not in config
    assert os.stat(dest).st_mode & 0o777 == 0o700


def test_git_install_is_refused_unless_allowed(tmp_path: Any, bare_repo: str) -> None:
    backend = installing(tmp_path, allow=False)
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, json={
            "git": bare_repo, "ref": "main", "route": "/blog", "app": "blog:app"})
        assert answer.status_code == 403
        assert "ADMIN_ALLOW_INSTALL" in answer.json()["error"]
    assert backend.calls == [] and not os.path.exists(tmp_path / "apps")


@pytest.mark.parametrize("extra, status, words", [
    ({"ref": "no-such-branch"}, 400,
     "git clone failed: fatal: Remote branch no-such-branch not found in upstream origin"),
    ({"ref": "--upload-pack=touch /tmp/x"}, 400, "'ref' may not start with '-'"),
    ({"ref": "main; rm -rf /"}, 400, "is not a branch or tag name"),
    ({"git": "--upload-pack=x"}, 400, "'git' may not start with '-'"),
    ({"git": "/nonexistent/repo.git"}, 400, "git clone failed: fatal: repository"),
    # transports off the allow-list: fd:: waited on a descriptor until the timeout
    ({"git": "fd::7"}, 400, "git clone failed: fatal: transport 'fd' not allowed"),
    ({"git": "ext::sh -c touch% /tmp/qt-ext"}, 400, "transport 'ext' not allowed"),
    ({"ref": "main", "requirements": "yes"}, 400, "'requirements' must be true or false"),
])
def test_a_failing_install_leaves_no_clone(tmp_path: Any, bare_repo: str,
                                           extra: dict[str, Any], status: int,
                                           words: str) -> None:
    backend = installing(tmp_path)
    body = {"git": bare_repo, "route": "/blog", "app": "blog:app", **extra}
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, json=body, timeout=60)
        assert answer.status_code == status
        assert words in answer.json()["error"], answer.json()
    assert backend.calls == []
    apps = tmp_path / "apps"
    assert not os.path.exists(apps) or os.listdir(apps) == []


def test_a_mount_failing_after_the_clone_removes_it(tmp_path: Any, bare_repo: str) -> None:
    backend = installing(tmp_path)
    backend.mount_error = AdminError(400, "cannot import 'blog:nope'")
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, timeout=60, json={
            "git": bare_repo, "ref": "main", "route": "/blog", "app": "blog:nope"})
        assert (answer.status_code, answer.json()) == (400, {"error": "cannot import 'blog:nope'"})
    assert backend.app_dir_files == [".git", "blog.py", "requirements.txt"]  # it was cloned
    assert os.listdir(tmp_path / "apps") == []


def test_a_clone_that_exists_is_409_and_kept(tmp_path: Any, bare_repo: str) -> None:
    backend = installing(tmp_path)
    kept = tmp_path / "apps" / "blogapp"
    kept.mkdir(parents=True)
    (kept / "mine.txt").write_text("mine")
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, json={
            "git": bare_repo, "route": "/blog", "app": "blog:app"})
        assert answer.status_code == 409 and "already exists" in answer.json()["error"]
    assert os.listdir(kept) == ["mine.txt"]


def test_empty_requirements_install_and_mount(tmp_path: Any, bare_repo: str) -> None:
    backend = installing(tmp_path)
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, timeout=120, json={
            "git": bare_repo, "route": "/blog", "app": "blog:app", "requirements": True})
        assert answer.status_code == 201, answer.text
    assert backend.calls == [("mount", ("/blog", "blog:app", "git",
                                        str(tmp_path / "apps" / "blogapp")))]


def test_a_clone_that_hangs_is_killed_at_the_timeout_and_removed(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "git.pid"
    fake_git = bin_dir / "git"  # makes its destination, says its pid, then hangs
    fake_git.write_text('#!/bin/sh\nfor last; do :; done\nmkdir -p "$last"\n'
                        f'echo $$ > {pid_file}\nexec sleep 60\n')
    fake_git.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    backend = installing(tmp_path)
    with serve_admin(backend, install_timeout=1.0) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, timeout=60, json={
            "git": "https://example.org/slow.git", "route": "/slow", "app": "slow:app"})
        assert (answer.status_code, answer.json()) == (
            504, {"error": "git clone did not finish within 1 s"})
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid)  # killed and reaped
    assert os.listdir(tmp_path / "apps") == []
    assert backend.calls == []


@pytest.mark.parametrize("asked", [False, True])
def test_requirements_are_installed_only_when_asked(tmp_path: Any, asked: bool) -> None:
    # a requirement pip refuses at once (no network): it fails only if pip runs
    bare = make_bare(tmp_path, requirements="this is not a requirement!\n")
    backend = installing(tmp_path)
    with serve_admin(backend) as srv:
        answer = httpx.post(srv.url + "/apps", headers=AUTH, timeout=120, json={
            "git": bare, "route": "/blog", "app": "blog:app", "requirements": asked})
    if asked:
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("pip install failed: ")
        assert backend.calls == [] and os.listdir(tmp_path / "apps") == []
    else:
        assert answer.status_code == 201
        assert backend.calls == [("mount", ("/blog", "blog:app", "git",
                                            str(tmp_path / "apps" / "blogapp")))]
