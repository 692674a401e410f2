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
from shipcaptain.actions.shell import ShellAction, ShellParams
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
        env = {**os.environ, **ctx.env}
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
    repo: str = Field(default=".", description="The checkout, relative to the work directory.")
    fetch: bool = Field(default=True, description="`git fetch` the remote first.")
    announcement: str = Field(
        default="Feature freeze for {release}: no merges to {branch} after {cutoff}.",
        description="The announcement; `{release}`, `{branch}` and `{cutoff}` are filled in.",
    )


class FreezeOutputs(ActionOutputs):
    """Outputs of the ``freeze`` action."""

    announce: str = Field(description="The freeze announcement, posted when the check passes.")
    late_commits: list[str] = Field(description="Commits that reached the branch after the cutoff.")


class FreezeAction(Action[FreezeParams]):
    """Check that nothing reached the branch after the freeze cutoff (listing the offending
    commits) and announce the freeze: the step's ``announce`` output, which the engine posts
    to the release's channels (the notifiers) once the step succeeds."""

    name = "freeze"
    changes_world = False
    summary = "Check no commit landed after the freeze cutoff; announce the freeze."
    Params = FreezeParams
    Outputs = FreezeOutputs
    idempotent = True

    def describe(self, params: FreezeParams, ctx: PlanContext) -> str:
        return f"check that {params.branch} has no commits after {params.cutoff}"

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
        # the commit date is when a commit landed on the branch (merge, rebase, squash)
        late = [
            c
            for c in git.commits(params.branch, since=cutoff.isoformat())
            if _parse_time(c["date"]) > cutoff
        ]
        message = params.announcement.format(
            release=ctx.release_values.get("version", ctx.release_id),
            branch=params.branch,
            cutoff=cutoff.isoformat(),
        )
        outputs: dict[str, Any] = {
            "announce": message,
            "late_commits": [c["sha"] for c in late],
        }
        if late:
            return Outcome.failure(
                f"{len(late)} commits reached {params.branch} after the cutoff "
                f"{cutoff.isoformat()}",
                detail="\n".join(
                    f"{c['sha'][:12]} {c['date']} {c['author']}: {c['subject']}" for c in late
                ),
                outputs=outputs,
                retryable=False,
            )
        return Outcome.success(
            f"no commits on {params.branch} after {cutoff.isoformat()}; freeze announced",
            detail=message,
            outputs=outputs,
        )
