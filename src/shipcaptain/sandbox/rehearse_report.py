"""The rehearsal's scorecard: one row per fault, as JSON and as Markdown.

A row says which step caught the fault and how long after it took effect, what the
runbook did (halted, rolled back, paged), whether the rollback restored the previous
version (the images the cluster runs, the app's health and build hash), the messages and
pages that went out and the SLA clocks started; and a verdict: ``caught`` (by a check
made for it), ``caught late`` (by a later, other check), ``missed`` (with the check that
would have caught it) or ``not injected`` (the release never reached its moment).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipcaptain.rehearsals import keep_rehearsal
from shipcaptain.sandbox.rehearse_faults import NOT_YET
from shipcaptain.settings import Settings

if TYPE_CHECKING:
    from shipcaptain.sandbox.rehearse import Attempt, Rehearsal

FAILED = ("failed", "timed_out")
DID = {"succeeded": "completed", "failed": "halted", "rolled_back": "rolled back"}
#: verdicts that make ``rehearse`` exit non-zero
BAD = ("missed", "not injected")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def scorecard_row(
    r: Rehearsal,
    a: Attempt,
    status: str,
    before: dict[str, Any],
    after: dict[str, Any],
    evidence: list[str],
) -> dict[str, Any]:
    store = r.world.client.store
    forward = r.rb.steps
    failed = sorted(
        (
            run
            for run in store.list_step_runs(a.release_id)
            if run.step_id in forward and run.status in FAILED and run.ended_at is not None
        ),
        key=lambda run: run.ended_at or datetime.max,
    )
    caught_by: str | None = None
    caught_at: datetime | None = None
    how = ""
    if a.detection is not None:
        caught_by, caught_at, how = a.detection
    elif failed and status != "succeeded":
        caught_by, caught_at, how = failed[0].step_id, failed[0].ended_at, failed[0].summary
    if not a.fault.catchers and status != "succeeded":  # the engine's to catch, not a step's
        a.saved.setdefault("missed", f"the release ended {status}, not succeeded")
    if a.injected_at is None:
        verdict = "not injected"
    elif caught_by is None or "missed" in a.saved:
        verdict = "missed"
        caught_by = None
        how = a.saved.get("missed", how)
    elif not a.fault.catchers or forward[caught_by].action in a.fault.catchers:
        verdict = "caught"
    else:
        verdict = "caught late"
    detect = (
        round((caught_at - a.injected_at).total_seconds(), 1)
        if caught_at is not None and a.injected_at is not None
        else None
    )
    window = r.damage_window if r.damage_window is not None else a.fault.window
    if a.fault.window is None:
        window = None  # a fault with no damage window (it does its harm at once or never)
    if verdict == "caught" and window is not None and detect is not None and detect > window:
        verdict = "caught late"
        how = f"{how} (after {detect} s: later than the damage window of {window:g} s)"
    notices = store.list_notifications(a.release_id)
    messages = [
        {"kind": n.kind, "channel": n.channel, "status": n.status, "text": n.text} for n in notices
    ]
    pages = [m for m in messages if m["kind"] == "page" or m["channel"].startswith("pagerduty")]
    incidents = [
        {
            "id": i.id,
            "severity": i.severity,
            "status": i.status,
            "opened_at": _iso(i.opened_at),
            "acknowledge_by": _iso(i.acknowledge_by),
            "mitigate_by": _iso(i.mitigate_by),
        }
        for i in store.list_incidents()
        if i.release_id == a.release_id
    ]
    did = [DID.get(status, status)]
    if a.fault.did_when_caught and verdict == "caught":
        did.insert(0, a.fault.did_when_caught)
    if pages or incidents:
        did.append("paged" if pages else "opened an incident")
    restored: dict[str, Any] | None = None
    if status == "rolled_back":
        restored = {
            "images": after["deployments"] == before["deployments"],
            "health": after["health"][0] == 200,
            "build": after["health"][1] == before["health"][1],
            "build_before": before["health"][1],
            "build_after": after["health"][1],
        }
        restored["restored"] = restored["images"] and restored["health"] and restored["build"]
    return {
        "fault": a.fault.name,
        "title": a.fault.title,
        "moment": a.fault.moment,
        "version": a.version,
        "release": a.release_id,
        "release_status": status,
        "verdict": verdict,
        "caught_by": caught_by,
        "how": how,
        "time_to_detect_s": detect,
        "runbook_did": did,
        "rollback": restored,
        "messages": messages,
        "pages": pages,
        "incidents": incidents,
        "would_catch": a.fault.would_catch
        if verdict in BAD or (verdict == "caught late" and window is not None)
        else None,
        "damage_window_s": window,
        "injected_into": a.saved.get("target"),
        "gates_nobody_may_answer": a.saved.get("unanswered", []),
        "notes": a.notes,
        "evidence": evidence,
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    rows = report["faults"]
    lines = [
        f"# Rehearsal of {report['runbook']}",
        "",
        f"{report['caught']} of {len(rows)} faults caught, {len(report['missed'])} missed "
        f"({report['seconds']:.0f} s).",
        "",
    ]
    if report.get("team"):
        lines += [f"The team's own team file: {report['team']}.", ""]
    kept = report.get("kept") or {}
    if kept.get("id"):
        lines += [f"Kept for the dashboard as rehearsal {kept['id']} (in {kept['folder']}).", ""]
    lines += [
        "| Fault | Verdict | Caught by | Time to detect | Runbook did | Rollback restored "
        "| Messages | Pages | SLA clocks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        rb = row["rollback"]
        restored = (
            "n/a"
            if rb is None
            else ("yes" if rb["restored"] else "NO")
            + f" (build {rb['build_before']} → {rb['build_after']}, images "
            + ("back" if rb["images"] else "NOT back")
            + ")"
        )
        clocks = (
            ", ".join(
                f"{i['severity']} ack by {i['acknowledge_by']}, mitigate by {i['mitigate_by']}"
                for i in row["incidents"]
            )
            or "none"
        )
        sent = sum(1 for m in row["messages"] if m["status"] == "sent")
        detect = "—" if row["time_to_detect_s"] is None else f"{row['time_to_detect_s']} s"
        cells = [
            f"{row['fault']}: {row['title']}",
            f"**{row['verdict']}**",
            row["caught_by"] or "—",
            detect,
            ", ".join(row["runbook_did"]),
            restored,
            f"{sent} sent of {len(row['messages'])}",
            str(len(row["pages"])),
            clocks,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    missed = [row for row in rows if row["verdict"] in ("missed", "not injected")]
    if missed:
        lines += ["", "## Missed faults: the check that would have caught each", ""]
        lines += [f"- **{r['fault']}** ({r['verdict']}): {r['would_catch']}" for r in missed]
    late = [row for row in rows if row["verdict"] == "caught late" and row["would_catch"]]
    if late:
        lines += ["", "## Faults caught late: the check that would have caught each in time", ""]
        lines += [f"- **{r['fault']}** ({r['how']}): {r['would_catch']}" for r in late]
    nobody = [(r["fault"], g) for r in rows for g in r.get("gates_nobody_may_answer", [])]
    if nobody:
        lines += ["", "## Gates nobody in the team may answer", ""]
        lines += [f"- {g['step']} ({g['why']}), in the release of {f}" for f, g in nobody]
    lines += ["", "## Each fault", ""]
    for row in rows:
        lines.append(
            f"- **{row['fault']}** (release {row['release']}, v{row['version']}, "
            f"{row['release_status']}; injected {row['moment']}): {row['how'] or 'nothing failed'}"
        )
        lines += [f"  - {note}" for note in row["notes"]]
        lines += [
            f"  - gate {g['step']}: nobody in the team may answer it ({g['why']})"
            for g in row.get("gates_nobody_may_answer", [])
        ]
        lines += [
            f"  - message to {m['channel']} ({m['kind']}, {m['status']}): {m['text']}"
            for m in row["messages"]
        ]
        lines += [f"  - evidence: {path}" for path in row["evidence"] if path.endswith(".md")]
    if report["not_done"]:
        lines += ["", "## Faults this rehearsal does not inject yet", ""]
        lines += [f"- {name}: {why}" for name, why in report["not_done"].items()]
    return "\n".join(lines) + "\n"


def write_report(
    report_dir: Path,
    runbook: Path,
    rows: list[dict[str, Any]],
    seconds: float,
    *,
    team: Path | None = None,
    settings: Settings | None = None,
    timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The report in ``report_dir``; with ``settings``, also kept in its rehearsals
    directory for the dashboard (:mod:`shipcaptain.rehearsals`)."""
    report: dict[str, Any] = {
        "runbook": str(runbook),
        "team": str(team) if team is not None else None,
        "faults": rows,
        "caught": sum(1 for r in rows if r["verdict"] in ("caught", "caught late")),
        "missed": [r["fault"] for r in rows if r["verdict"] in BAD],
        "seconds": round(seconds, 1),
        # where the time went besides the faults' rows (each row's "seconds")
        "timing": timing or {},
        "not_done": NOT_YET,
        "report": {
            "json": str(report_dir / "report.json"),
            "markdown": str(report_dir / "report.md"),
        },
    }
    if settings is not None:
        report["kept"] = {"folder": str(settings.rehearsals_path), "id": None}

    def write() -> None:
        text = json.dumps(report, indent=2) + "\n"
        (report_dir / "report.json").write_text(text, encoding="utf-8")
        (report_dir / "report.md").write_text(markdown(report), encoding="utf-8")

    write()
    if settings is not None:
        rid = keep_rehearsal(settings.rehearsals_path, report_dir, report)
        report["kept"]["id"] = rid
        write()
        for name in ("report.json", "report.md"):  # the kept copy knows its id too
            shutil.copyfile(report_dir / name, settings.rehearsals_path / rid / name)
    return report
