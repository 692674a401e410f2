"""Real git, run as a subprocess in the release's checkout. Errors become ActionError
with git's own message."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shipcaptain.errors import ActionError


class Git:
    def __init__(self, repo: Path, timeout: float = 60.0) -> None:
        self.repo = repo
        self.timeout = timeout

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=self.repo,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ActionError(f"cannot run git in {self.repo}: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ActionError(f"git {' '.join(args)} took longer than {self.timeout:g}s") from exc
        if check and proc.returncode != 0:
            raise ActionError(
                f"git {' '.join(args)} failed in {self.repo}: "
                f"{(proc.stderr or proc.stdout).strip() or f'exit {proc.returncode}'}"
            )
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def commit_of(self, rev: str) -> str | None:
        """The commit ``rev`` points at (tags peeled), or None if it does not exist."""
        proc = self.run("rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def remote_tag_commit(self, remote: str, tag: str) -> str | None:
        """The commit tag ``tag`` points at on ``remote`` (peeled), or None."""
        lines = self.out("ls-remote", "--tags", remote, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
        found: dict[str, str] = {}
        for line in lines.splitlines():
            sha, ref = line.split("\t", 1)
            found[ref] = sha
        return found.get(f"refs/tags/{tag}^{{}}") or found.get(f"refs/tags/{tag}")

    def describe_commit(self, sha: str) -> str:
        return self.out("log", "-1", "--format=%h %s (%an, %cI)", sha)

    def commits(self, rev_range: str, since: str | None = None) -> list[dict[str, str]]:
        """Commits of ``rev_range`` (newest first): sha, author, date, subject, body."""
        sep, end = "\x1f", "\x1e"
        extra = [f"--since={since}"] if since else []
        fmt = f"--format=%H{sep}%an{sep}%cI{sep}%s{sep}%b{end}"
        # not .strip(): Python counts the separators as white space
        text = self.run("log", fmt, *extra, rev_range).stdout
        result = []
        for raw in text.split(end):
            record = raw.strip("\n")
            if not record:
                continue
            sha, author, date, subject, body = record.split(sep, 4)
            result.append(
                {"sha": sha, "author": author, "date": date, "subject": subject, "body": body}
            )
        return result
