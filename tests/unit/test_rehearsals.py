"""Rehearsal reports kept for the dashboard (shipcaptain.rehearsals): one folder each in
the settings' rehearsals directory, listed newest first, read back whole; an id or a file
name that is not one of them is NotFound, never a way out of the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.rehearsals import kept_rehearsal
from shipcaptain.errors import NotFound
from shipcaptain.rehearsals import list_rehearsals, read_rehearsal, rehearsal_file
from shipcaptain.settings import Settings


def test_a_rehearsal_is_kept_listed_and_read_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.rehearsals_path == tmp_path / "data" / "rehearsals"
    assert list_rehearsals(settings.rehearsals_path) == []  # no folder yet
    first = kept_rehearsal(settings, tmp_path, "first.yaml")
    second = kept_rehearsal(settings, tmp_path, "second.yaml")
    (settings.rehearsals_path / "not-a-rehearsal").mkdir()
    listed = list_rehearsals(settings.rehearsals_path)
    assert [r.id for r in listed] == sorted([first, second], reverse=True)
    kept = read_rehearsal(settings.rehearsals_path, first)
    assert kept.summary.runbook.endswith("first.yaml")
    assert (kept.summary.faults, kept.summary.caught, kept.summary.missed) == (
        3,
        2,
        ["replica_lag"],
    )
    assert kept.report["kept"] == {"folder": str(settings.rehearsals_path), "id": first}
    # the report directory's copy names the kept one too
    report_dir = tmp_path / "report-first.yaml"
    assert json.loads((report_dir / "report.json").read_text()) == kept.report
    assert "2 of 3 faults caught, 1 missed" in kept.markdown
    assert f"Kept for the dashboard as rehearsal {first}" in kept.markdown
    assert "## Faults caught late: the check that would have caught each in time" in (kept.markdown)
    assert kept.evidence == ["evidence/rel-error_rate.json", "evidence/rel-error_rate.md"]
    path = rehearsal_file(settings.rehearsals_path, first, "evidence/rel-error_rate.md")
    assert path.read_text() == "# Evidence of rel-error_rate\n"


@pytest.mark.parametrize(
    "name", ["report.json", "../report.json", "evidence/../report.md", "/etc/passwd", "evidence"]
)
def test_only_evidence_files_are_served(tmp_path: Path, name: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    rid = kept_rehearsal(settings, tmp_path)
    with pytest.raises(NotFound):
        rehearsal_file(settings.rehearsals_path, rid, name)


@pytest.mark.parametrize("rid", ["..", "../data", "20261204T000000Z-x-zzzzzz", "x/y"])
def test_an_id_that_is_not_a_kept_rehearsal_is_not_found(tmp_path: Path, rid: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    kept_rehearsal(settings, tmp_path)
    with pytest.raises(NotFound):
        read_rehearsal(settings.rehearsals_path, rid)
