"""The ``migrate`` and ``verify_schema`` actions: apply database migrations natively.

``migrate`` with ``phase: expand`` applies backward-compatible migrations in version order,
up to the first contract migration (later ones only when provably independent of it; on a
database with nothing applied, everything); with ``phase: contract`` it first checks that
every read replica in ``replicas`` is streaming and caught up (it waits up to
``replica_wait`` for them), then applies the rest. ``shipcaptain migrations plan`` shows
which runs where, and why. Put the contract
step after the rollout steps with ``needs`` so it runs only once the app is updated.
``verify_schema`` fails unless every migration file is applied with an unchanged checksum.
The primary's URL is best kept out of the runbook: by default it is read from
``$DATABASE_URL`` in the step's environment. ``supabase db push --file ...`` lines of a
Markdown runbook import as ``migrate`` steps."""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Literal

import psycopg
from pydantic import Field

from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.errors import ActionError
from shipcaptain.runbook.durations import Duration


class MigrateParams(ActionParams):
    """Parameters of the ``migrate`` action."""

    directory: str = Field(description="Migrations directory (or a Supabase project root).")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the primary; better left out of the runbook: see "
        "database_url_env.",
    )
    database_url_env: str = Field(
        default="DATABASE_URL",
        description="Environment variable holding the primary's URL, used when database_url "
        "is not given.",
    )
    phase: Literal["expand", "contract"] = Field(description="Which migrations to apply.")
    replicas: dict[str, str] = Field(
        default_factory=dict,
        description="Read replicas checked before contract: name to URL, or to $NAME of the "
        "environment variable holding the URL.",
    )
    max_lag_bytes: int = Field(default=16 * 1024 * 1024, ge=0, description="Replay lag limit.")
    max_lag_seconds: float = Field(default=30.0, ge=0, description="Replay lag limit.")
    replica_wait: Duration = Field(
        default=300.0, description="How long to wait for replicas to become healthy."
    )
    dry_run: bool = Field(default=False, description="Show what would be applied; change nothing.")


class VerifySchemaParams(ActionParams):
    """Parameters of the ``verify_schema`` action."""

    directory: str = Field(description="Migrations directory (or a Supabase project root).")
    database_url: str | None = Field(default=None, description="PostgreSQL URL of the primary.")
    database_url_env: str = Field(
        default="DATABASE_URL",
        description="Environment variable holding the primary's URL, used when database_url "
        "is not given.",
    )


def primary_url(params: MigrateParams | VerifySchemaParams, ctx: StepContext) -> str:
    """The primary's URL: ``database_url``, else the variable ``database_url_env`` names."""
    url = params.database_url or ctx.getenv(params.database_url_env)
    if not url:
        raise ActionError(f"no database: give database_url or set ${params.database_url_env}")
    return url


def replica_urls(params: MigrateParams, ctx: StepContext) -> dict[str, str]:
    """Each replica's URL, reading ``$NAME`` values from the environment."""
    urls = {}
    for name, value in params.replicas.items():
        url = ctx.getenv(value[1:]) if value.startswith("$") else value
        if not url:
            raise ActionError(f"replica {name}: {value} is not set")
        urls[name] = url
    return urls


def _dir(directory: str, workdir: Path) -> Path:
    path = Path(directory)
    return path if path.is_absolute() else workdir / path


def replicas_problems(params: MigrateParams, ctx: StepContext) -> list[str]:
    from shipcaptain.migrations.replicas import check_replica

    with psycopg.connect(primary_url(params, ctx), autocommit=True) as primary:
        out = []
        for name, url in replica_urls(params, ctx).items():
            health = check_replica(primary, name, url, params.max_lag_bytes, params.max_lag_seconds)
            if health.problem:
                out.append(f"replica {name} {health.problem}")
        return out


class MigrateOutputs(ActionOutputs):
    """Outputs of the ``migrate`` action."""

    applied: list[str] = Field(description="Migrations applied.")
    deferred: list[str] = Field(description="Migrations left for the contract phase.")
    outside_transaction: list[str] = Field(description="Migrations run outside a transaction.")


class MigrateAction(Action[MigrateParams]):
    name = "migrate"
    summary = "Apply expand or contract database migrations under an advisory lock."
    Params = MigrateParams
    Outputs = MigrateOutputs
    idempotent = True

    def describe(self, params: MigrateParams, ctx: PlanContext) -> str:
        guard = (
            f", after {len(params.replicas)} replica(s) are healthy"
            if (params.phase == "contract" and params.replicas)
            else ""
        )
        return f"apply {params.phase} migrations from {params.directory}{guard}"

    def run(self, params: MigrateParams, ctx: StepContext) -> Outcome:
        from shipcaptain.migrations.migrator import (
            ApplyResult,
            ChecksumDrift,
            MigrationFailed,
            MigrationRefused,
            apply,
        )

        if params.phase == "contract" and params.replicas:
            deadline = time.monotonic() + min(params.replica_wait, ctx.timeout)
            while problems := replicas_problems(params, ctx):
                if time.monotonic() >= deadline:
                    return Outcome.failure(
                        "contract phase blocked: " + "; ".join(problems), retryable=True
                    )
                ctx.progress("contract phase waits: " + "; ".join(problems))
                time.sleep(1.0)
        try:
            result = apply(
                primary_url(params, ctx),
                _dir(params.directory, ctx.workdir),
                params.phase,
                applied_by(ctx),
                dry_run=params.dry_run,
                progress=ctx.progress,
            )
        except MigrationFailed as exc:
            return Outcome.failure(
                str(exc).splitlines()[0],
                detail=str(exc),
                retryable=False,
                outputs=exc.result.to_dict(),
            )
        except (ChecksumDrift, MigrationRefused) as exc:
            nothing = ApplyResult(failed={"code": exc.code, "error": str(exc)}).to_dict()
            return Outcome.failure(str(exc), retryable=False, outputs=nothing)
        except psycopg.Error as exc:
            raise ActionError(f"database error: {str(exc).strip()}") from exc
        verb = "would apply" if params.dry_run else "applied"
        summary = f"{verb} {len(result.applied)} {params.phase} migration(s)"
        if result.outside_transaction:
            summary += (
                f"; in parts (outside a transaction): {', '.join(result.outside_transaction)}"
            )
        if result.deferred:
            summary += f"; deferred to contract: {', '.join(result.deferred)}"
        if result.skipped_files:
            summary += f"; skipped {len(result.skipped_files)} file(s) that are not migrations"
        return Outcome.success(summary, outputs=result.to_dict())


def applied_by(ctx: StepContext) -> str:
    """The history row's ``applied_by``: the person, and where it ran."""
    who = ctx.started_by or getpass.getuser()
    where = f"release {ctx.release_id}" if ctx.release_id else "shipcaptain migrations apply"
    return f"{who} ({where})"


class VerifySchemaOutputs(ActionOutputs):
    """Outputs of the ``verify_schema`` action."""

    version: str | None = Field(description="The latest applied migration's version.")


class VerifySchemaAction(Action[VerifySchemaParams]):
    name = "verify_schema"
    changes_world = False
    summary = "Check that every migration is applied with an unchanged checksum."
    Params = VerifySchemaParams
    Outputs = VerifySchemaOutputs
    idempotent = True

    def describe(self, params: VerifySchemaParams, ctx: PlanContext) -> str:
        return f"check that every migration in {params.directory} is applied"

    def run(self, params: VerifySchemaParams, ctx: StepContext) -> Outcome:
        from shipcaptain.migrations.migrator import read_plan

        with psycopg.connect(primary_url(params, ctx), autocommit=True) as conn:
            planned = read_plan(conn, _dir(params.directory, ctx.workdir)).migrations
        pending = [p.file.version for p in planned if not p.applied]
        drift = [p.file.version for p in planned if p.drift]
        if pending or drift:
            return Outcome.failure(
                f"schema not at the expected version: pending {pending}, drifted {drift}",
                retryable=False,
            )
        latest = planned[-1].file.version if planned else "none"
        return Outcome.success(f"schema at version {latest}", outputs={"version": latest})
