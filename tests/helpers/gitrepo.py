"""Real git repositories for tests: a checkout with a bare repository as ``origin``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Fola",
    "GIT_AUTHOR_EMAIL": "fola@example.invalid",
    "GIT_COMMITTER_NAME": "Fola",
    "GIT_COMMITTER_EMAIL": "fola@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**ENV, **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_repo(root: Path) -> Path:
    """``root/checkout`` with one commit on main, pushed to the bare ``root/origin.git``."""
    origin = root / "origin.git"
    checkout = root / "checkout"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, env=ENV)
    subprocess.run(["git", "init", "-q", "-b", "main", str(checkout)], check=True, env=ENV)
    git(checkout, "remote", "add", "origin", str(origin))
    commit(checkout, "chore: initial", "README.md")
    git(checkout, "push", "-q", "origin", "main")
    return checkout


def commit(
    repo: Path,
    message: str,
    path: str = "file.txt",
    *,
    author: str = "Fola",
    date: str | None = None,
) -> str:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as fh:
        fh.write(message + "\n")
    git(repo, "add", path)
    env = {"GIT_AUTHOR_NAME": author}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    git(repo, "commit", "-q", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD")
