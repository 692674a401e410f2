"""Pre-flight checks that look for themselves: ``backup_recent``, ``verify_env`` and
``freeze``. (The changelog sign-off lives in ``actions/changelog.py``.)"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.actions.shell import ShellAction, ShellParams, parameter_env
from shipcaptain.errors import ActionError
from shipcaptain.integrations.git import Git
from shipcaptain.runbook.durations import Duration, format_duration

# ---------------------------------------------------------------- backup_recent


class BackupRecentParams(ActionParams):
    """Parameters of the ``backup_recent`` action. Give exactly one of ``sql``, ``path``
    and ``command``."""

    max_age: Duration = Field(default=86400.0, description="The oldest a backup may be.")
    sql: str | None = Field(
        default=None, description="Query returning the time of the last completed backup."
    )
    database_url_env: str = Field(
        default="DATABASE_URL", description="Environment variable with the database URL (`sql`)."
    )
    path: str | None = Field(
        default=None, description="File whose modification time is the backup's time."
    )
    command: str | None = Field(
        default=None, description="Command printing the backup's time as ISO 8601 (last line)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BackupRecentParams:
        given = [n for n in ("sql", "path", "command") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of sql, path, command")
        return self


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class BackupRecentOutputs(ActionOutputs):
    """Outputs of the ``backup_recent`` action."""

    backup_at: str = Field(description="When the latest backup was taken (ISO 8601).")
    age_seconds: int = Field(description="Its age.")


class BackupRecentAction(Action[BackupRecentParams]):
    """Check that the last backup completed within ``max_age``, from a SQL query, a file's
    modification time or a command printing an ISO timestamp; fail with the age found."""

    name = "backup_recent"
    changes_world = False
    summary = "Check that a backup completed within a maximum age (SQL, file or command)."
    Params = BackupRecentParams
    Outputs = BackupRecentOutputs
    idempotent = True
    shell_params = ("command",)

    def describe(self, params: BackupRecentParams, ctx: PlanContext) -> str:
        source = (
            f"query `{params.sql}`"
            if params.sql
            else f"file {params.path}"
            if params.path
            else f"command `{params.command}`"
        )
        limit = format_duration(params.max_age)
        return f"check that the last backup ({source}) is younger than {limit}"

    def _last_backup(self, params: BackupRecentParams, ctx: StepContext) -> datetime:
        env = {**os.environ, **parameter_env(ctx.release_values), **ctx.env}
        if params.path:
            path = Path(ctx.workdir) / params.path
            try:
                return datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except OSError as exc:
                raise ActionError(f"backup file {path}: {exc.strerror}") from exc
        if params.sql:
            import psycopg

            url = env.get(params.database_url_env)
            if not url:
                raise ActionError(f"no database URL: set {params.database_url_env}")
            try:
                with psycopg.connect(url, connect_timeout=10) as conn:
                    row = conn.execute(params.sql).fetchone()
            except psycopg.Error as exc:
                raise ActionError(ctx.redact(f"backup query failed: {exc}")) from exc
            if row is None or row[0] is None:
                raise ActionError("the backup query returned no time: no backup recorded")
            value = row[0]
            return value if isinstance(value, datetime) else _parse_time(str(value))
        assert params.command is not None
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", params.command],
            cwd=ctx.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=min(ctx.timeout, 300.0),
            check=False,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        if proc.returncode != 0 or not lines:
            raise ActionError(
                ctx.redact(f"backup command exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
            )
        try:
            return _parse_time(lines[-1])
        except ValueError as exc:
            raise ActionError(f"backup command printed {lines[-1]!r}, not an ISO time") from exc

    def run(self, params: BackupRecentParams, ctx: StepContext) -> Outcome:
        at = self._last_backup(params, ctx)
        age = max(time.time() - at.timestamp(), 0.0)
        outputs: dict[str, Any] = {"backup_at": at.isoformat(), "age_seconds": round(age)}
        limit = format_duration(params.max_age)
        if age > params.max_age:
            return Outcome.failure(
                f"last backup is {format_duration(round(age))} old ({at.isoformat()}), "
                f"more than {limit}",
                outputs=outputs,
                retryable=False,
            )
        return Outcome.success(
            f"last backup {format_duration(round(age))} ago ({at.isoformat()}), within {limit}",
            outputs=outputs,
        )


# ---------------------------------------------------------------- verify_env


class VerifyEnvParams(ActionParams):
    """Parameters of the ``verify_env`` action."""

    script: str | None = Field(
        default=None, description="The team's own check, e.g. `./scripts/verify-env.sh production`."
    )
    required: list[str] = Field(
        default_factory=list, description="Runtime configuration keys that must be set."
    )
    env_file: str | None = Field(
        default=None,
        description="File of KEY=value lines holding the configuration (default: the "
        "release's environment).",
    )
    timeout: Duration | None = Field(default=None, description="Limit for the script.")


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


class VerifyEnvOutputs(ActionOutputs):
    """Outputs of the ``verify_env`` action."""

    missing: list[str] = Field(description="Required variables that are not set.")
    checked: list[str] = Field(description="The variables checked.")
    exit_code: int | None = Field(default=None, description="The script's exit code.")


class VerifyEnvAction(Action[VerifyEnvParams]):
    """Run the team's environment check script (output kept, secrets masked) and check that
    every required configuration key is set and non-empty. Values are never printed."""

    name = "verify_env"
    changes_world = False
    summary = "Run the environment check script and check required config keys (never shown)."
    Params = VerifyEnvParams
    Outputs = VerifyEnvOutputs
    idempotent = True
    shell_params = ("script",)

    def describe(self, params: VerifyEnvParams, ctx: PlanContext) -> str:
        parts = []
        if params.script:
            parts.append(f"run `{params.script}`")
        if params.required:
            parts.append(f"check that {', '.join(params.required)} are set")
        return " and ".join(parts) or "nothing to check"

    def run(self, params: VerifyEnvParams, ctx: StepContext) -> Outcome:
        if params.env_file:
            path = Path(ctx.workdir) / params.env_file
            try:
                config = _read_env_file(path)
            except OSError as exc:
                raise ActionError(f"cannot read {path}: {exc.strerror}") from exc
        else:
            config = {**os.environ, **ctx.env}
        missing = [k for k in params.required if not config.get(k, "").strip()]
        secret_values = [config[k] for k in params.required if config.get(k)]
        detail = ""
        outputs: dict[str, Any] = {"missing": missing, "checked": list(params.required)}
        if params.script:
            shell = ShellAction()
            sctx = StepContext(
                release_id=ctx.release_id,
                step_id=ctx.step_id,
                attempt=ctx.attempt,
                timeout=ctx.timeout,
                workdir=ctx.workdir,
                release_values=ctx.release_values,
                inputs=ctx.inputs,
                env=ctx.env,
                secrets=[*ctx.secrets, *secret_values],
                progress=ctx.progress,
            )
            result = shell.run(ShellParams(command=params.script, timeout=params.timeout), sctx)
            detail = result.detail
            outputs["exit_code"] = result.outputs.get("exit_code")
            if not result.ok:
                return Outcome.failure(
                    f"{params.script}: {result.summary}",
                    detail=detail,
                    outputs=outputs,
                    retryable=False,
                )
        if missing:
            return Outcome.failure(
                f"configuration keys not set: {', '.join(missing)}",
                detail=detail,
                outputs=outputs,
                retryable=False,
            )
        done = [f"`{params.script}` passed"] if params.script else []
        if params.required:
            done.append(f"{len(params.required)} configuration keys set")
        return Outcome.success(
            ", ".join(done) or "nothing to check", detail=detail, outputs=outputs
        )


# ---------------------------------------------------------------- freeze


class FreezeParams(ActionParams):
    """Parameters of the ``freeze`` action."""

    cutoff: str = Field(
        description="Freeze cutoff given to the release, ISO 8601 (e.g. `2026-11-26T12:00:00Z`)."
    )
    branch: str = Field(default="origin/main", description="Branch that must have no later merges.")
    head_at_cutoff: str = Field(
        default="",
        description="The branch's head commit recorded at the cutoff: every commit on the "
        "branch that is not in it came after the cutoff, whatever its dates say.",
    )
    github: str | None = Field(
        default=None,
        description="Repository `owner/name` whose record of pushes (GitHub's activity API) "
        "tells the branch's head at the cutoff, when `head_at_cutoff` is not given. Uses "
        "`GITHUB_API_URL` and the token in `token_env`.",
    )
    token_env: str = Field(default="GITHUB_TOKEN", description="Environment variable of the token.")
    web_url: str | None = Field(
        default=None,
        description="Repository page for the late commits' links (`<web_url>/commit/<sha>`); "
        "default: `https://github.com/<github>`.",
    )
    repo: str = Field(default=".", description="The checkout, relative to the work directory.")
    fetch: bool = Field(default=True, description="`git fetch` the remote first.")
    announcement: str = Field(
        default="Feature freeze for {release}: no merges to {branch} after {cutoff}.",
        description="The announcement; `{release}`, `{branch}` and `{cutoff}` are filled in.",
    )

    @model_validator(mode="after")
    def _knows_the_branch_at_the_cutoff(self) -> FreezeParams:
        if not self.head_at_cutoff and not self.github:
            raise ValueError(
                "say how to know what was on the branch at the cutoff: head_at_cutoff (the "
                "head recorded then) or github (GitHub's record of pushes); a commit's date "
                "says when it was written, not when it reached the branch"
            )
        return self


class FreezeOutputs(ActionOutputs):
    """Outputs of the ``freeze`` action."""

    announce: str = Field(description="The freeze announcement, posted when the check passes.")
    late_commits: list[str] = Field(description="Commits that reached the branch after the cutoff.")
    late: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The same commits: `sha`, `author`, `subject`, `url` and, from GitHub's "
        "record, `pushed_at` and `pushed_by`.",
    )
    head_at_cutoff: str | None = Field(
        default=None, description="The branch's head at the cutoff the check compared with."
    )


class FreezeAction(Action[FreezeParams]):
    """Check that nothing reached the branch after the freeze cutoff and announce the freeze:
    the step's ``announce`` output, which the engine posts to the release's channels once the
    step succeeds.

    What reached the branch after the cutoff is every commit on it that the branch's head at
    the cutoff does not contain, whatever its dates (a commit written before the cutoff and
    pushed after it is late). The head at the cutoff is ``head_at_cutoff``, or the ``before``
    of the first push after the cutoff in GitHub's record of pushes (``github``). Late
    commits are listed with author and link. Run it again right before tagging (as a guard
    of the tag step) to catch a merge during the release."""

    name = "freeze"
    changes_world = False
    summary = "Check no commit reached the branch after the freeze cutoff; announce the freeze."
    Params = FreezeParams
    Outputs = FreezeOutputs
    idempotent = True

    def describe(self, params: FreezeParams, ctx: PlanContext) -> str:
        since = params.head_at_cutoff[:12] or f"its head at {params.cutoff} (GitHub's pushes)"
        return f"check that nothing reached {params.branch} after {since}"

    def run(self, params: FreezeParams, ctx: StepContext) -> Outcome:
        if not params.cutoff.strip():
            return Outcome.failure("no freeze cutoff was given to the release", retryable=False)
        try:
            cutoff = _parse_time(params.cutoff)
        except ValueError:
            return Outcome.failure(
                f"cutoff {params.cutoff!r} is not an ISO 8601 time", retryable=False
            )
        git = Git(Path(ctx.workdir) / params.repo, timeout=min(ctx.timeout, 120.0))
        if params.fetch and "/" in params.branch:
            git.run("fetch", "--quiet", params.branch.split("/", 1)[0])
        pushes: list[dict[str, Any]] = []
        head = params.head_at_cutoff
        if not head:
            found = _head_from_pushes(params, ctx, cutoff, git)
            if isinstance(found, Outcome):
                return found
            head, pushes = found
        created = set(head) == {"0"}  # the branch itself was created after the cutoff
        if not created and git.commit_of(head) is None:
            return Outcome.failure(
                f"the branch's head at the cutoff, {head[:12]}, is not in the checkout",
                retryable=False,
            )
        tip = git.commit_of(params.branch)
        if (
            not created
            and tip is not None
            and git.run("merge-base", "--is-ancestor", head, tip, check=False).returncode
        ):
            return Outcome.failure(
                f"{params.branch} no longer contains its head at the cutoff {head[:12]}: it was "
                "rewritten (a force push) after the cutoff",
                outputs={"head_at_cutoff": head, "late_commits": [], "announce": ""},
                retryable=False,
            )
        web = params.web_url or (f"https://github.com/{params.github}" if params.github else "")
        late = [
            {
                "sha": c["sha"],
                "author": c["author"],
                "subject": c["subject"],
                "url": f"{web.rstrip('/')}/commit/{c['sha']}" if web else "",
                **_push_of(c["sha"], pushes, git),
            }
            for c in git.commits(params.branch if created else f"{head}..{params.branch}")
        ]
        message = params.announcement.format(
            release=ctx.release_values.get("version", ctx.release_id),
            branch=params.branch,
            cutoff=cutoff.isoformat(),
        )
        outputs: dict[str, Any] = {
            "announce": message,
            "late_commits": [c["sha"] for c in late],
            "late": late,
            "head_at_cutoff": head,
        }
        if late:
            return Outcome.failure(
                f"{len(late)} commits reached {params.branch} after the cutoff "
                f"{cutoff.isoformat()}: "
                + ", ".join(f"{c['sha'][:12]} by {c['author']}" for c in late[:5]),
                detail="\n".join(
                    f"{c['sha'][:12]} {c['author']}: {c['subject']}"
                    + (
                        f" (pushed {c['pushed_at']} by {c['pushed_by']})"
                        if c.get("pushed_at")
                        else ""
                    )
                    + (f" {c['url']}" if c["url"] else "")
                    for c in late
                ),
                outputs=outputs,
                retryable=False,
            )
        return Outcome.success(
            f"nothing reached {params.branch} after {cutoff.isoformat()} (head then: "
            f"{head[:12]}); freeze announced",
            detail=message,
            outputs=outputs,
        )


def _head_from_pushes(
    params: FreezeParams, ctx: StepContext, cutoff: datetime, git: Git
) -> tuple[str, list[dict[str, Any]]] | Outcome:
    """The branch's head at the cutoff from GitHub's record of pushes to it, and the pushes
    after the cutoff (oldest first)."""
    from shipcaptain.integrations.github import DEFAULT_API_URL, GitHub

    assert params.github is not None
    branch = params.branch.split("/", 1)[1] if "/" in params.branch else params.branch
    token = ctx.getenv(params.token_env)
    api_url = ctx.getenv("GITHUB_API_URL") or DEFAULT_API_URL
    with GitHub(params.github, token, api_url=api_url, timeout=min(ctx.timeout, 30.0)) as gh:
        activity = gh.pushes(branch)
    after = sorted(
        (a for a in activity if _parse_time(str(a["timestamp"])) > cutoff),
        key=lambda a: str(a["timestamp"]),
    )
    if after:
        return str(after[0]["before"]), after
    tip = git.commit_of(params.branch)
    if tip is None:
        return Outcome.failure(f"branch {params.branch} not found", retryable=False)
    return tip, []


def _push_of(sha: str, pushes: list[dict[str, Any]], git: Git) -> dict[str, Any]:
    """When and by whom ``sha`` reached the branch: the first push whose new head has it."""
    for push in pushes:
        after = str(push.get("after") or "")
        if after and (
            after == sha
            or not git.run("merge-base", "--is-ancestor", sha, after, check=False).returncode
        ):
            actor = push.get("actor") or {}
            return {"pushed_at": push.get("timestamp"), "pushed_by": actor.get("login", "")}
    return {}
