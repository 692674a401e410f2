"""The demo's GitHub: release history in the sandbox repository, and the GitHub double
serving that repository (check runs, statuses, the Deploy workflow).

``prepare_history`` gives the app repository what a real one has before a release: the
previous release tag ``v1.3.0``, conventional commits with PR numbers and a new migration
since then, and last night's backup. ``start_github`` starts the double with CI green on
``main`` and a past successful Deploy run, and points ``GITHUB_API_URL``/``GITHUB_TOKEN``
at it. A Deploy run uploads the artifact ``release-outputs`` with the digests of the images
it built (``outputs.json``), which the runbook's digest check compares with the pods.

For a release by hand (the tutorial), the double runs on its own over a demo's workspace::

    python -m shipcaptain.sandbox.github --workspace WS --env-file WS/github.env
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from shipcaptain.sandbox.cluster import APPS
from shipcaptain.sandbox.doubles.github import GitHubDouble, Run
from shipcaptain.sandbox.doubles.kubernetes import digest_of
from shipcaptain.sandbox.service import print_env, serve_until_stopped
from shipcaptain.sandbox.workspace import Sandbox, git

REPO = "ValueCanvas/ValueCanvas"
PREVIOUS_TAG = "v1.3.0"
TOKEN = "sandbox-github-token"

_HISTORY = [
    ("feat(canvas): share canvases read-only (#412)", "canvas-sharing.md", "Fola"),
    ("fix(billing): round invoice totals to cents (#415)", "billing-rounding.md", "Dev"),
    (
        "feat(integrations): index archived canvases (#418)",
        "migrations/20240201090000-add-archive-index.sql",
        "Dev",
    ),
    # touches no feature owner's surface: the release captain confirms it in the sign-off
    ("chore: bump dependencies (#420)", "DEPENDENCIES.md", "Casey"),
]


def prepare_history(sandbox: Sandbox) -> str:
    """Tag the sandbox's first commit as the previous release, add the commits of this
    release, push them, write last night's backup. Returns the freeze cutoff (ISO)."""
    env = sandbox.env()
    app = sandbox.app
    git("tag", "-a", PREVIOUS_TAG, "-m", f"Release {PREVIOUS_TAG}", cwd=app, env=env)
    for subject, path, author in _HISTORY:
        target = app / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith(".sql"):
            target.write_text(
                "-- phase: expand\ncreate index concurrently if not exists canvases_archived\n"
                "  on canvases (archived_at);\n"
            )
        else:
            target.write_text(subject + "\n")
        git("add", path, cwd=app, env=env)
        git(
            "commit",
            "-q",
            "-m",
            subject,
            cwd=app,
            env={
                **env,
                "GIT_AUTHOR_NAME": author,
                "GIT_AUTHOR_EMAIL": f"{author.lower()}@valuecanvas.invalid",
            },
        )
    git("push", "-q", "origin", "main", PREVIOUS_TAG, cwd=app, env=env)
    backups = sandbox.state / "backups"
    backups.mkdir(parents=True, exist_ok=True)
    nightly = time.time() - 5 * 3600
    for environment in ("staging", "production"):
        dump = backups / f"{environment}.dump"
        dump.write_text("[sandbox] pg_dump of valuecanvas\n")
        os.utime(dump, (nightly, nightly))
    # the freeze started after the last merge (commit times have one-second resolution)
    return datetime.fromtimestamp(int(time.time()) + 1, UTC).isoformat()


def _built_images(run: Run) -> dict[str, dict[str, str]]:
    """What the Deploy workflow uploads: the digest of each image it built and pushed for
    the tag (the same digests the sandbox registry serves)."""
    version = run.inputs.get("tag", run.ref).removeprefix("v")
    images = {app: digest_of(f"ghcr.io/valuecanvas/{app}:{version}") for app in APPS}
    return {"release-outputs": {"outputs.json": json.dumps({"images": images})}}


def start_github(sandbox: Sandbox) -> GitHubDouble:
    """The GitHub double for the sandbox's repository, CI green on main; sets the
    environment variables the GitHub steps read."""
    double = _ready(GitHubDouble(token=TOKEN, git_dir=sandbox.origin).start(), sandbox.app)
    os.environ.update(github_env(double))
    return double


def github_env(double: GitHubDouble) -> dict[str, str]:
    """The environment variables that point the GitHub steps at ``double``."""
    return {"GITHUB_API_URL": double.url, "GITHUB_TOKEN": double.token}


def _ready(double: GitHubDouble, app: Path) -> GitHubDouble:
    """CI green on the app's HEAD, a past successful Deploy run, and a Deploy workflow that
    runs for about three seconds and uploads the digests of the images it built."""
    head = git("rev-parse", "HEAD", cwd=app)
    for check in ("test", "lint", "build"):
        double.add_check_run(head, check)
    double.add_status(head, "ci/e2e")
    double.record_run("deploy.yml", "main", "success", age=1800)
    deploy = double.workflow("deploy.yml")
    deploy.queued_seconds = 0.5
    deploy.running_seconds = 2.0
    deploy.jobs = ["build-image", "push-image", "deploy-staging"]
    deploy.artifacts = _built_images
    return double


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipcaptain.sandbox.github",
        description="Serve the sandbox's GitHub API double for a demo's workspace (CI green "
        "on HEAD, the Deploy workflow); print GITHUB_API_URL and GITHUB_TOKEN.",
    )
    parser.add_argument("--workspace", type=Path, required=True, help="the demo's workspace")
    parser.add_argument("--env-file", type=Path, help="also write the variables to this file")
    args = parser.parse_args(argv)
    root = args.workspace.resolve()
    app, origin = root / "valuecanvas", root / "origin.git"
    if not (app / ".git").is_dir() or not origin.is_dir():
        print(
            f"--workspace {root} is not a demo workspace (no valuecanvas/ and origin.git/ in it)",
            file=sys.stderr,
        )
        return 2
    double = GitHubDouble(token=TOKEN, git_dir=origin)

    def started() -> None:
        _ready(double, app)
        print_env(github_env(double), args.env_file)

    serve_until_stopped(double, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
