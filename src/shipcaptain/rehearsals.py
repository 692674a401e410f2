"""Rehearsal reports kept for the dashboard: one folder per rehearsal in the directory the
settings name (``SHIPCAPTAIN_REHEARSALS_DIR``, default ``rehearsals/`` in the data
directory), holding what ``rehearse`` wrote to its ``--report-dir``: ``report.json``,
``report.md`` and ``evidence/`` (each release's evidence bundle).

Why a directory and not the state database: a rehearsal keeps its releases in a
throwaway database of its own and never writes to the team's, so its report is a set of
files like its ``--report-dir``, read back by whoever shows them (the dashboard, through
the client). A server and the machine that rehearses share it like the anchor folder (a
mounted or synced folder), or CI copies the report directory there.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipcaptain.errors import NotFound

#: a rehearsal's id: when it was kept, the runbook's name and a few random letters
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_.-]{1,80}-[0-9a-f]{6}$")


@dataclass(frozen=True)
class RehearsalSummary:
    """A kept rehearsal as the list shows it."""

    id: str
    runbook: str
    kept_at: datetime
    faults: int
    caught: int
    missed: list[str]
    seconds: float


@dataclass(frozen=True)
class RehearsalReport:
    """A kept rehearsal: its summary, scorecard (report.json), Markdown and evidence files
    (paths relative to its folder)."""

    summary: RehearsalSummary
    report: dict[str, Any]
    markdown: str
    evidence: list[str] = field(default_factory=list)


def _slug(runbook: str) -> str:
    stem = Path(runbook).stem or "runbook"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)[:80].strip("-.") or "runbook"


def keep_rehearsal(folder: Path, report_dir: Path, report: dict[str, Any]) -> str:
    """Copy the rehearsal's report (``report_dir``: report.json, report.md, evidence/)
    into a new folder of ``folder``; its id."""
    now = datetime.now(UTC)
    rid = f"{now:%Y%m%dT%H%M%SZ}-{_slug(str(report.get('runbook', '')))}-{secrets.token_hex(3)}"
    target = folder / rid
    target.mkdir(parents=True)
    for name in ("report.json", "report.md"):
        shutil.copyfile(report_dir / name, target / name)
    if (report_dir / "evidence").is_dir():
        shutil.copytree(report_dir / "evidence", target / "evidence")
    return rid


def _summary(rid: str, report: dict[str, Any]) -> RehearsalSummary:
    kept = datetime.strptime(rid[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return RehearsalSummary(
        id=rid,
        runbook=str(report.get("runbook", "")),
        kept_at=kept,
        faults=len(report.get("faults", [])),
        caught=int(report.get("caught", 0)),
        missed=[str(m) for m in report.get("missed", [])],
        seconds=float(report.get("seconds", 0.0)),
    )


def _read(folder: Path, rid: str) -> dict[str, Any]:
    if not _ID.match(rid):
        raise NotFound(f"no rehearsal {rid!r}")
    try:
        report: dict[str, Any] = json.loads((folder / rid / "report.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise NotFound(f"no rehearsal {rid!r} in {folder}") from None
    return report


def list_rehearsals(folder: Path, limit: int = 100) -> list[RehearsalSummary]:
    """The kept rehearsals, newest first (a folder without a readable report is skipped)."""
    if not folder.is_dir():
        return []
    found: list[RehearsalSummary] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name, reverse=True):
        if len(found) >= limit:
            break
        try:
            found.append(_summary(entry.name, _read(folder, entry.name)))
        except NotFound:
            continue
    return found


def read_rehearsal(folder: Path, rid: str) -> RehearsalReport:
    """One kept rehearsal (NotFound if there is none of that id)."""
    report = _read(folder, rid)
    base = folder / rid
    try:
        text = (base / "report.md").read_text("utf-8")
    except OSError:
        text = ""
    evidence = sorted(
        str(p.relative_to(base)) for p in (base / "evidence").rglob("*") if p.is_file()
    )
    return RehearsalReport(_summary(rid, report), report, text, evidence)


def rehearsal_file(folder: Path, rid: str, name: str) -> Path:
    """An evidence file of a kept rehearsal, by its path relative to the rehearsal's folder
    (NotFound for anything else: no way out of the folder)."""
    _read(folder, rid)
    base = (folder / rid / "evidence").resolve()
    path = (folder / rid / name).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise NotFound(f"rehearsal {rid} has no evidence file {name!r}")
    return path
