"""What classification says about a migration: a verdict per statement, findings, and the
file's phase; and what the classifier knows while it reads one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Key = tuple[str, str]
Phase = Literal["expand", "contract"]
Effect = Literal["expand", "contract", "neutral"]


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    statement: int  # 1-based index of the statement in the migration
    line: int = 0  # line in the file

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "statement": self.statement,
            "line": self.line,
        }


@dataclass(frozen=True)
class StatementVerdict:
    sql: str
    kind: str  # the parser's node name, e.g. AlterTableStmt
    phase: Effect
    reason: str
    transactional: bool = True
    line: int = 0  # where the statement starts in the file
    index_name: str | None = None  # the index a non-transactional statement builds or drops
    changes: frozenset[str] = frozenset()  # names of objects it creates, alters or drops
    refers: frozenset[str] = frozenset()  # names of objects it mentions
    opaque: bool = False  # dynamic SQL: its objects are not known
    commits: bool = False  # a DO block with COMMIT or ROLLBACK inside

    @property
    def transaction_control(self) -> bool:
        return self.kind == "TransactionStmt" or self.commits


@dataclass
class Classification:
    phase: Phase
    statements: list[StatementVerdict]
    findings: list[Finding] = field(default_factory=list)
    declared: Phase | None = None  # from the header comment
    inferred: Phase = "expand"

    @property
    def transactional(self) -> bool:
        return all(s.transactional for s in self.statements)

    @property
    def contract_statements(self) -> list[StatementVerdict]:
        return [s for s in self.statements if s.phase == "contract"]

    @property
    def wrapped(self) -> bool:
        """The file is ``BEGIN; ...; COMMIT;`` and has no other transaction control."""
        tc = [s for s in self.statements if s.transaction_control]
        return (
            len(tc) == 2
            and self.statements[0] is tc[0]
            and self.statements[-1] is tc[1]
            and _txkind(tc[0]) in ("BEGIN", "START")
            and _txkind(tc[1]) in ("COMMIT", "END")
        )

    @property
    def refused_by(self) -> StatementVerdict | None:
        """The first statement that controls the transaction inside the file (a leading
        BEGIN with a closing COMMIT around the whole file does not)."""
        tc = [s for s in self.statements if s.transaction_control]
        if not tc or self.wrapped:
            return None
        leading = self.statements[0] if _txkind(self.statements[0]) in ("BEGIN", "START") else None
        return next((s for s in tc if s is not leading), tc[0])

    @property
    def refusal(self) -> str | None:
        """Why the file cannot run as one transaction (transaction control inside it)."""
        first = self.refused_by
        if first is None:
            return None
        what = first.reason if first.commits else f"{_txkind(first)} at line {first.line}"
        return (
            f"{what} controls the transaction inside the file: "
            "a failure after it would leave part of the file applied; split the file there "
            "into two migrations, or remove it (shipcaptain runs each file as one transaction)"
        )

    @property
    def changes(self) -> set[str]:
        return set().union(*(s.changes for s in self.statements)) if self.statements else set()

    @property
    def refers(self) -> set[str]:
        return set().union(*(s.refers for s in self.statements)) if self.statements else set()

    @property
    def opaque(self) -> bool:
        return any(s.opaque for s in self.statements)

    @property
    def creates_unknown(self) -> bool:
        """It creates an extension: objects the file does not name."""
        return any(s.kind == "CreateExtensionStmt" for s in self.statements)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "inferred_phase": self.inferred,
            "declared_phase": self.declared,
            "contract_because": [
                {"line": s.line, "kind": s.kind, "reason": s.reason}
                for s in self.contract_statements
            ],
            "refused": self.refusal,
            "statements": [
                {
                    "line": s.line,
                    "kind": s.kind,
                    "phase": s.phase,
                    "reason": s.reason,
                    "transactional": s.transactional,
                }
                for s in self.statements
            ],
            "findings": [f.to_dict() for f in self.findings],
        }


def _txkind(s: StatementVerdict) -> str:
    return s.sql.strip().split(None, 1)[0].upper().rstrip(";")


@dataclass
class FileState:
    """What the classifier knows while it reads one file."""

    created: set[Key] = field(default_factory=set)  # made earlier in this file
    replaced: set[Key] = field(default_factory=set)  # ... by CREATE OR REPLACE only
    later: dict[Key, list[int]] = field(default_factory=dict)  # line(s) where a key is made
    findings: list[Finding] = field(default_factory=list)
    index: int = 0  # the statement being classified

    def new(self, kind: str, name: str) -> bool:
        return (kind, name) in self.created

    def new_table(self, name: str | None) -> bool:
        return name is not None and ("table", name) in self.created

    def finding(self, rule: str, message: str, line: int) -> None:
        self.findings.append(Finding(rule, message, self.index, line))
