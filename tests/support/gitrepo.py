"""Git repositories made on disk for the admin socket's install tests (no network)."""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["git", "make_bare"]


def git(*args: str, cwd: Any = None) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                    "-c", "init.defaultBranch=main", *args],
                   cwd=cwd, check=True, capture_output=True, timeout=60)


def make_bare(root: Any, requirements: str = "",
              blog: str = "async def app(scope, receive, send):\n    pass\n") -> str:
    """A bare repository (``blogapp.git``) whose ``main`` holds blog.py and requirements.txt."""
    work = root / "work"
    work.mkdir()
    (work / "blog.py").write_text(blog)
    (work / "requirements.txt").write_text(requirements)
    git("init", "-q", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "blog", cwd=work)
    bare = root / "blogapp.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return str(bare)
