"""The ``migration_sign_off`` action: feature owners sign off on risky contract migrations.

A contract migration needs a sign-off when it has a lock-risk finding or touches one of the
``surfaces`` (tables and other relations owned by feature owners). The step lists them in an
approval gate for ``roles``; when no migration needs one, it succeeds at once. Put it in the
contract step's ``needs``. It reads the migration files only (not the database), so its verdict
is the same if the engine replays it after a restart. A relative ``directory`` is taken from
the engine's working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from shipcaptain.actions.base import (
    ActionOutputs,
    ActionParams,
    DurableAction,
    DurableContext,
    GateRequest,
    Outcome,
    PlanContext,
)
from shipcaptain.runbook.durations import Duration


class MigrationSignOffParams(ActionParams):
    """Parameters of the ``migration_sign_off`` action."""

    directory: str = Field(description="Migrations directory (or a Supabase project root).")
    roles: list[str] = Field(
        default_factory=lambda: ["feature_owner"], description="Roles whose members sign off."
    )
    surfaces: list[str] = Field(
        default_factory=list,
        description="Tables (or schema.table) owned by feature owners; touching one needs "
        "a sign-off.",
    )
    timeout: Duration = Field(default=7200.0, description="How long to wait for the sign-off.")


def _relations(node: Any, out: set[str]) -> None:
    if isinstance(node, tuple | list):
        for item in node:
            _relations(item, out)
        return
    if not hasattr(node, "_fields") and type(node).__module__ != "pglast.ast":
        return
    if type(node).__name__ == "RangeVar":
        out.add(node.relname)
        if node.schemaname:
            out.add(f"{node.schemaname}.{node.relname}")
    for name in getattr(node, "__slots__", ()):
        _relations(getattr(node, name, None), out)


def risky_contract_migrations(directory: Path, surfaces: list[str]) -> list[str]:
    """``["<file>: <why>", ...]`` for every contract migration that needs a sign-off."""
    import pglast

    from shipcaptain.migrations.classify import classify_sql
    from shipcaptain.migrations.discovery import discover

    wanted = set(surfaces)
    out = []
    for f in discover(directory).files:
        cls = classify_sql(f.sql, str(f.path))
        if cls.phase != "contract":
            continue
        touched: set[str] = set()
        for st in cls.statements:
            _relations(pglast.parse_sql(st.sql), touched)
        why = [fd.rule for fd in cls.findings]
        why += [f"touches {s}" for s in sorted(touched & wanted)]
        if why:
            out.append(f"{f.path.name}: {', '.join(why)}")
    return out


class MigrationSignOffOutputs(ActionOutputs):
    """Outputs of the ``migration_sign_off`` action."""

    migrations: list[Any] = Field(default_factory=list, description="The risky migrations.")


class MigrationSignOffAction(DurableAction[MigrationSignOffParams]):
    name = "migration_sign_off"
    changes_world = False
    summary = "Feature owners sign off on contract migrations with lock risks or owned surfaces."
    Params = MigrationSignOffParams
    Outputs = MigrationSignOffOutputs
    waits_for_people = True

    def describe(self, params: MigrationSignOffParams, ctx: PlanContext) -> str:
        return (
            f"ask {', '.join(params.roles)} to sign off on risky contract migrations "
            f"in {params.directory}"
        )

    def run_durable(self, params: MigrationSignOffParams, ctx: DurableContext) -> Outcome:
        folder = Path(params.directory)
        risky = ctx.record(
            "risky_migrations",
            lambda: risky_contract_migrations(ctx.workdir / folder, params.surfaces),
        )
        if not risky:
            return Outcome.success("no contract migration needs a sign-off")
        ctx.progress(f"{len(risky)} contract migration(s) need a sign-off")
        result = ctx.await_gate(
            GateRequest(
                kind="approval",
                prompt="Apply these contract migrations after the rollout? " + "; ".join(risky),
                roles=list(params.roles),
                deadline_seconds=params.timeout,
                evidence={"migrations": risky},
            )
        )
        who = ", ".join(d.user for d in result.decisions if d.decision == "approve")
        if result.approved:
            return Outcome.success(f"signed off by {who}", outputs={"migrations": risky})
        reason = "nobody decided in time" if result.timed_out else "rejected"
        return Outcome.failure(f"contract migrations not signed off: {reason}", retryable=False)
