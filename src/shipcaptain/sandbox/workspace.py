"""The demo's sandbox: the ValueCanvas app as a real git repository with a bare origin,
the runbook, and stand-ins for the production tools the laptop cannot reach."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from shipcaptain.errors import ShipError
from shipcaptain.sandbox.doubles.github import record_pushes

ASSETS = files("shipcaptain.sandbox") / "assets"


@dataclass(frozen=True)
class Sandbox:
    root: Path
    app: Path  # the working copy releases run in
    origin: Path  # the bare repository the tags are pushed to
    bin: Path  # stand-ins for gh and npm
    state: Path  # what the stand-ins did
    runbook: Path

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "SHIPCAPTAIN_SANDBOX_STATE": str(self.state),
            "SUPABASE_PROJECT_REF": "valuecanvas-sandbox",
            "GIT_AUTHOR_NAME": "ValueCanvas CI",
            "GIT_AUTHOR_EMAIL": "ci@valuecanvas.invalid",
            "GIT_COMMITTER_NAME": "ValueCanvas CI",
            "GIT_COMMITTER_EMAIL": "ci@valuecanvas.invalid",
        }


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
    except FileNotFoundError as exc:
        raise ShipError("the demo needs git on PATH") from exc
    except subprocess.CalledProcessError as exc:
        raise ShipError(f"git {' '.join(args)} failed: {exc.stderr.strip()}") from exc
    return done.stdout.strip()


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)
    for path in target.rglob("*"):
        if path.is_file() and (path.suffix == ".sh" or path.parent.name in ("bin", "scripts")):
            path.chmod(0o755)


def build_sandbox(root: Path) -> Sandbox:
    """Lay out the sandbox under ``root`` (which must be empty or missing)."""
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ShipError(f"the demo workspace {root} is not empty; pick an empty directory")
    sandbox = Sandbox(
        root=root,
        app=root / "valuecanvas",
        origin=root / "origin.git",
        bin=root / "bin",
        state=root / "sandbox-state",
        runbook=root / "valuecanvas" / "runbook.yaml",
    )
    sandbox.state.mkdir()
    env = sandbox.env()
    with as_file(ASSETS) as assets:
        _copy_tree(assets / "bin", sandbox.bin)
        _copy_tree(assets / "app", sandbox.app)
        # kept outside app/ in the package: a hidden directory is easy to lose when packaging
        _copy_tree(assets / "workflows", sandbox.app / ".github" / "workflows")
        shutil.copyfile(assets / "valuecanvas.yaml", sandbox.runbook)
        shutil.copyfile(assets / "team.yaml", root / "team.yaml")
    git("init", "--bare", "--initial-branch=main", str(sandbox.origin), cwd=root, env=env)
    record_pushes(sandbox.origin)  # GitHub's record of pushes, for the freeze check
    git("init", "--initial-branch=main", cwd=sandbox.app, env=env)
    git("add", "-A", cwd=sandbox.app, env=env)
    git("commit", "-q", "-m", "feat(canvas): archive canvases", cwd=sandbox.app, env=env)
    git("remote", "add", "origin", str(sandbox.origin), cwd=sandbox.app, env=env)
    git("push", "-q", "origin", "main", cwd=sandbox.app, env=env)
    return sandbox
