"""A kept rehearsal report for the dashboard's tests, written by the rehearsal's own report
writer (``rehearse`` itself takes minutes: tests/acceptance/test_rehearse*.py run it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipcaptain.sandbox.rehearse_report import write_report
from shipcaptain.settings import Settings


def row(fault: str, verdict: str, **given: Any) -> dict[str, Any]:
    """A scorecard row as ``rehearse`` writes it (``scorecard_row``)."""
    base: dict[str, Any] = {
        "fault": fault,
        "title": f"The fault {fault}",
        "moment": "once the new build serves",
        "version": "1.4.0",
        "release": f"rel-{fault}",
        "release_status": "rolled_back",
        "verdict": verdict,
        "caught_by": None if verdict == "missed" else "metrics_analysis",
        "how": "error_rate 0.2 >= 0.01",
        "time_to_detect_s": None if verdict == "missed" else 4.2,
        "runbook_did": ["rolled back", "paged"],
        "rollback": {
            "images": True,
            "health": True,
            "build": True,
            "build_before": "abc1234",
            "build_after": "abc1234",
            "restored": True,
        },
        "messages": [{"kind": "comms.rollback", "channel": "slack", "status": "sent", "text": "x"}],
        "pages": [],
        "incidents": [],
        "would_catch": "a `metrics` step after the rollout" if verdict != "caught" else None,
        "damage_window_s": 300.0,
        "injected_into": None,
        "gates_nobody_may_answer": [],
        "notes": [],
        "evidence": [],
    }
    return {**base, **given}


def kept_rehearsal(settings: Settings, tmp_path: Path, name: str = "runbook.yaml") -> str:
    """A rehearsal of three faults (caught, caught late, missed) with an evidence bundle,
    kept in the settings' rehearsals directory; its id."""
    report_dir = tmp_path / f"report-{name}"
    evidence = report_dir / "evidence"
    evidence.mkdir(parents=True)
    (evidence / "rel-error_rate.json").write_text('{"release": "rel-error_rate"}\n')
    (evidence / "rel-error_rate.md").write_text("# Evidence of rel-error_rate\n")
    rows = [
        row("error_rate", "caught", evidence=[str(evidence / "rel-error_rate.json")]),
        row("latency", "caught late", how="p95 0.8 >= 0.5 (after 40 s: later than 6 s)"),
        row("replica_lag", "missed", release_status="succeeded", rollback=None),
    ]
    report = write_report(report_dir, tmp_path / name, rows, 61.0, settings=settings)
    return str(report["kept"]["id"])
