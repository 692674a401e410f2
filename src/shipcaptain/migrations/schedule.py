"""Which pending migration runs in which phase of a release, and why. Pure: no database.

* Nothing applied yet (a first deploy, a fresh environment: no history row and no table of
  the app's own outside PostgreSQL's and Supabase's schemas): no app runs against this
  schema, so every migration applies in version order in the expand phase. A database
  with tables but no history is in use: the rules below apply.
* Otherwise the expand phase applies pending expand migrations in version order until the
  first contract migration, which waits for the contract phase. A later expand migration
  still runs in the expand phase only if the plan proves it independent of every migration
  waiting before it: it mentions none of the objects they create, change or drop (names
  compared without schema). Otherwise it waits too, with the reason. A migration never
  runs while an earlier one it may depend on is pending.
* The contract phase applies everything still pending, in version order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipcaptain.migrations.discovery import MigrationFile
from shipcaptain.migrations.verdicts import Classification, Phase


@dataclass
class PlannedMigration:
    file: MigrationFile
    classification: Classification
    applied: bool
    drift: bool = False
    runs_in: Phase | None = None  # None: already applied
    reason: str = ""
    statements_done: int = 0  # of an interrupted earlier try

    @property
    def label(self) -> str:
        return f"{self.file.version}_{self.file.name}"

    @property
    def runs_in_text(self) -> str:
        if self.applied:
            return "already applied"
        return f"{self.runs_in} phase"


@dataclass
class Schedule:
    migrations: list[PlannedMigration]
    fresh: bool  # nothing applied yet
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def pending(self) -> list[PlannedMigration]:
        return [p for p in self.migrations if not p.applied]

    def to_run(self, phase: Phase) -> list[PlannedMigration]:
        if phase == "contract":
            return self.pending
        return [p for p in self.pending if p.runs_in == "expand"]

    def waiting(self, phase: Phase) -> list[PlannedMigration]:
        return [] if phase == "contract" else [p for p in self.pending if p.runs_in != "expand"]


def schedule(
    migrations: list[PlannedMigration], fresh: bool, in_use: list[str] | None = None
) -> None:
    """Fill in ``runs_in`` and ``reason`` of every pending migration. ``in_use``: tables
    that show a database with no migration history is in use all the same."""
    unknown = (
        f"no migration history, but the database has tables ({', '.join(in_use)}): in use, so "
        if in_use
        else ""
    )
    waiting: list[PlannedMigration] = []
    for p in migrations:
        if p.applied:
            p.runs_in, p.reason = None, "already applied"
            continue
        cls = p.classification
        if fresh:
            p.runs_in = "expand"
            p.reason = (
                "nothing is applied yet (first deploy): every migration applies in version "
                "order in the expand phase"
            )
        elif cls.phase == "contract":
            p.runs_in = "contract"
            p.reason = unknown + _contract_reason(cls)
            waiting.append(p)
        elif not waiting:
            p.runs_in, p.reason = "expand", "expand: adds what the running app does not use"
        else:
            blocker = _depends(p, waiting)
            if blocker is None:
                names = ", ".join(w.label for w in waiting)
                p.runs_in = "expand"
                p.reason = (
                    f"expand, and independent of {names} (waiting): it mentions none of the "
                    "objects they change"
                )
            else:
                p.runs_in, p.reason = "contract", blocker
                waiting.append(p)


def _contract_reason(cls: Classification) -> str:
    if cls.declared == "contract" and cls.inferred != "contract":
        return "contract: declared in the file's header"
    first = cls.contract_statements[0]
    more = len(cls.contract_statements) - 1
    extra = f" (and {more} more statement{'s' if more > 1 else ''})" if more else ""
    return f"contract: line {first.line}: {first.reason}{extra}"


def _depends(p: PlannedMigration, waiting: list[PlannedMigration]) -> str | None:
    """Why ``p`` must wait for a migration in ``waiting``, or None if it is independent."""
    mine = p.classification
    for w in waiting:
        theirs = w.classification
        if mine.opaque or theirs.opaque:
            who = p.label if mine.opaque else w.label
            return f"waits for {w.label}: {who} runs dynamic SQL, so independence cannot be proved"
        if theirs.creates_unknown:
            return (
                f"waits for {w.label}: it creates an extension or schema whose objects "
                "cannot be listed, so independence cannot be proved"
            )
        shared = (mine.refers | mine.changes) & theirs.changes
        if shared:
            return (
                f"waits for {w.label} (earlier, waiting for the contract phase): both touch "
                f"{', '.join(sorted(shared))}"
            )
    return None
