"""``POST /apps`` with ``"git"``: clone a repository into APPS_DIR and mount from it.

Refused (403) unless ADMIN_ALLOW_INSTALL: it runs the clone's code. The URL
and ref may not start with ``-`` (git would read an option) nor hold control
characters; the ref is a plain ref name. The clone goes to
``APPS_DIR/<name>``, the name taken from the URL's last part (``.git``
dropped, only ``A-Za-z0-9._-`` kept), refused (409) when it exists. ``git``
and ``pip`` run as subprocesses (no shell, stdin closed, no terminal prompt
for credentials) bounded by a timeout, so the serving loop never waits on
them. Any failure removes the clone and answers with the last line git or
pip wrote on stderr.

Credentials: a URL's userinfo (``https://user:password@host``, and
``https://TOKEN@host`` too) never reaches a log or an answer (``redacted``);
after the clone the ``origin`` remote is removed, so the clone's .git/config
keeps no credential; the clone's directory is made 0700. Git runs with an
allow-list of transports (https, http, ssh, git, file; never ``ext::`` or
``fd::``, which run commands or hang on a descriptor) and
GIT_PROTOCOL_FROM_USER=0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import urllib.parse
from typing import Any

from .backend import AdminBackend, AdminError, AppInfo
from .web import Refusal

__all__ = ["Installer", "clone_name"]

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


#: git's options: only these transports (``ext::`` runs a command, ``fd::`` hangs).
GIT_TRANSPORTS = ("-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
                  "-c", "protocol.http.allow=always", "-c", "protocol.ssh.allow=always",
                  "-c", "protocol.git.allow=always", "-c", "protocol.file.allow=always")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def clone_name(url: str) -> str:
    """The directory a clone of ``url`` goes to, in APPS_DIR (safe characters only)."""
    path = urllib.parse.urlsplit(url).path if "://" in url else url
    last = path.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    if last.endswith(".git"):
        last = last[:-4]
    name = _UNSAFE.sub("", last).lstrip(".-")
    if not name:
        raise Refusal(400, f"no directory name can be made of the git URL {redacted(url)!r}")
    return name


def redacted(url: str) -> str:
    """``url`` (or any text holding URLs) without userinfo, for logs and answers:
    ``https://user:pw@[::1]:8/x`` -> ``https://***@[::1]:8/x``."""
    return _USERINFO.sub(r"\1***@", url)


def _text(body: dict[str, Any], key: str, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise Refusal(400, f"{key!r} must be a non-empty string", key=key)
    if value.startswith("-"):
        raise Refusal(400, f"{key!r} may not start with '-'", key=key)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Refusal(400, f"{key!r} holds a control character", key=key)
    return value


class Installer:
    def __init__(self, backend: AdminBackend, timeout: float = 300.0) -> None:
        self.backend = backend
        self.timeout = timeout
        #: clones under way: a second install to the same place is a 409 too
        self._pending: set[str] = set()

    async def install(self, body: dict[str, Any], route: str, target: str,
                      lock: asyncio.Lock) -> AppInfo:
        config = self.backend.config
        if not config.ADMIN_ALLOW_INSTALL:
            raise Refusal(403, "installing from git is off: it runs the clone's code "
                          "(start the server with ADMIN_ALLOW_INSTALL to allow it)")
        url = _text(body, "git")
        hide = _userinfo(url)
        ref = _text(body, "ref", required=False)
        if ref and not _REF.fullmatch(ref) or ".." in ref:
            raise Refusal(400, f"'ref' {ref!r} is not a branch or tag name", key="ref")
        requirements = body.get("requirements", False)
        if not isinstance(requirements, bool):
            raise Refusal(400, "'requirements' must be true or false", key="requirements")
        apps_dir = os.path.abspath(config.APPS_DIR)
        dest = os.path.join(apps_dir, clone_name(url))
        if dest in self._pending or os.path.lexists(dest):
            raise Refusal(409, f"{dest} already exists: remove it or choose another URL")
        self._pending.add(dest)
        try:
            return await self._install(url, ref, requirements, dest, route, target, lock, hide)
        finally:
            self._pending.discard(dest)

    async def _install(self, url: str, ref: str, requirements: bool, dest: str, route: str,
                       target: str, lock: asyncio.Lock, hide: str) -> AppInfo:
        await asyncio.to_thread(os.makedirs, os.path.dirname(dest), exist_ok=True)
        command = ["git", *GIT_TRANSPORTS, "clone", "--depth=1", "--quiet"]
        if ref:
            command += ["--branch", ref]
        command += ["--", url, dest]
        try:
            await asyncio.to_thread(os.mkdir, dest, 0o700)  # git clones into it, empty
            await self._run(command, "git clone", hide)
            # the clone's .git/config would keep the URL, credentials and all
            await self._run(["git", "-C", dest, "remote", "remove", "origin"],
                            "git remote remove", hide)
            if requirements:
                wanted = os.path.join(dest, "requirements.txt")
                if not os.path.isfile(wanted):
                    raise Refusal(400, "the clone has no requirements.txt to install")
                await self._run([sys.executable, "-m", "pip", "install", "--quiet",
                                 "-r", wanted], "pip install", hide)
            async with lock:
                try:
                    return await self.backend.mount(route, target, source="git", app_dir=dest)
                except AdminError as exc:
                    raise Refusal(exc.status, exc.reason) from None
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, dest, True)
            raise

    async def _run(self, command: list[str], what: str, hide: str) -> None:
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true",
                   GIT_PROTOCOL_FROM_USER="0")
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env)
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            await _kill(proc)
            raise Refusal(504, f"{what} did not finish within {self.timeout:g} s") from None
        except asyncio.CancelledError:
            await _kill(proc)
            raise
        if proc.returncode != 0:
            lines = [line for line in stderr.decode("utf-8", "replace").splitlines()
                     if line.strip()]
            last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
            if len(hide) >= 8:  # (a short one, "git" of ssh://git@..., would mangle the line)
                last = last.replace(hide, "***")
            raise Refusal(400, f"{what} failed: {redacted(last)}")


def _userinfo(url: str) -> str:
    """The userinfo of ``url`` (``user:password``, a token), "" when it has none."""
    netloc = urllib.parse.urlsplit(url).netloc if "://" in url else ""
    return netloc.rpartition("@")[0]


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
