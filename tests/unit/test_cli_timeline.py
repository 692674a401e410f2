"""The timeline of `release show`, a followed release's stream and the live view (rich): at 80
and 120 columns no line is wider than the terminal, times and event kinds stay whole in their
columns, a long message wraps in its own column and nothing of it is lost; with no terminal
and no COLUMNS a timeline line reads as it always has."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from rich.cells import cell_len

from shipcaptain.cli.render import print_release
from shipcaptain.cli.tables import lines_of
from shipcaptain.cli.timeline import live_frame, print_events
from shipcaptain.client import ReleaseView, StepView
from shipcaptain.records import EventRecord, GateRecord, ReleaseRecord, StepRunRecord

AT = datetime(2026, 12, 4, 16, 54, 5, tzinfo=UTC)
LONG = "migrated the database schema: " + " ".join(f"added_column_{n}" for n in range(25))


def _release(status: str = "running") -> ReleaseRecord:
    return ReleaseRecord(
        id="rel-20261204-1654-0001",
        runbook_name="valuecanvas-platform-release-train",
        runbook_digest="0" * 64,
        runbook_text="",
        environment="production",
        started_by="casey",
        params={},
        status=cast(Any, status),
        created_at=AT,
    )


def _event(
    seq: int, kind: str, step: str | None, actor: str, message: str, **data: Any
) -> EventRecord:
    return EventRecord(
        seq=seq,
        at=AT + timedelta(seconds=seq),
        release_id="rel-20261204-1654-0001",
        step_id=step,
        kind=kind,
        actor=actor,
        message=message,
        data=data,
        prev_hash="",
        hash="",
    )


EVENTS = [
    _event(1, "release.created", None, "casey", "casey created the release"),
    _event(
        2,
        "step.succeeded",
        "migrate_database_schema_expand",
        "engine",
        LONG,
        before="running",
        after="succeeded",
    ),
    _event(3, "release.point_of_no_return", "contract", "fola", "the contract migration ran"),
    _event(4, "release.succeeded", None, "engine", "", before="running", after="succeeded"),
]
#: what each event says after its time and kind, in full (``release show``: with the change)
DETAILS = [
    "(casey) casey created the release",
    f"[migrate_database_schema_expand] [running → succeeded] {LONG}",
    "[contract] (fola) the contract migration ran",
    "[running → succeeded]",
]
TIME = re.compile(r"\d\d:\d\d:\d\d")


def _timeline(lines: list[str]) -> list[str]:
    return lines[lines.index(" timeline") + 1 :]


def _check_timeline(lines: list[str], width: int, indent: int, details: list[str]) -> None:
    """No line wider than ``width``; every event starts a line with its whole time and kind
    in their columns; its text, joined across the lines it wraps to, is all there."""
    assert lines, "the timeline printed nothing"
    assert max(cell_len(line) for line in lines) <= width, "\n".join(lines)
    firsts = [n for n, line in enumerate(lines) if TIME.match(line[indent:])]
    assert len(firsts) == len(EVENTS), "\n".join(lines)
    detail_at = {lines[n].index(e.kind) + 27 for n, e in zip(firsts, EVENTS, strict=True)}
    assert len(detail_at) == 1, "the texts start in one column:\n" + "\n".join(lines)
    (at,) = detail_at
    for n, event, detail in zip(firsts, EVENTS, details, strict=True):
        first = lines[n]
        assert first[indent:].split()[:2] == [f"{event.at:%H:%M:%S}", event.kind], first
        end = firsts[firsts.index(n) + 1] if n != firsts[-1] else len(lines)
        for more in lines[n + 1 : end]:  # a wrapped text's next lines: under its column
            assert more[:at].strip() == "", more
        shown = " ".join(line[at:].strip() for line in lines[n:end])
        assert " ".join(shown.split()) == " ".join(detail.split()), "\n".join(lines[n:end])


@pytest.mark.parametrize("width", [80, 120])
def test_release_show_timeline_fits_and_keeps_every_word(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    view = ReleaseView(release=_release(), steps=[], gates=[], events=EVENTS)
    print_release(view)
    timeline = _timeline(capsys.readouterr().out.splitlines())
    _check_timeline(timeline, width, 2, DETAILS)
    if width == 80:
        assert len(timeline) > len(EVENTS), "the long message wraps in its column"


def test_with_no_terminal_a_timeline_line_reads_as_before(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    print_events([EVENTS[0], EVENTS[3]], change=True)
    assert capsys.readouterr().out.splitlines() == [
        "16:54:06 release.created        (casey) casey created the release",
        "16:54:09 release.succeeded      [running → succeeded]",
    ]


@pytest.mark.parametrize("width", [80, 120])
def test_a_followed_release_streams_fitted_lines(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    print_events(EVENTS)  # the stream leaves the status change to the kind
    details = [
        d.replace("[running → succeeded] ", "").replace("[running → succeeded]", "")
        for d in DETAILS
    ]
    _check_timeline(capsys.readouterr().out.splitlines(), width, 0, details)


@pytest.mark.parametrize("width", [80, 120])
def test_the_live_view_fits(width: int) -> None:
    release = _release()

    def step(sid: str, phase: str, status: str, summary: str) -> StepView:
        record = StepRunRecord(
            release_id=release.id,
            step_id=sid,
            run=1,
            attempt=1,
            status=cast(Any, status),
            started_at=AT,
            ended_at=AT + timedelta(seconds=75) if status != "running" else None,
            summary=summary,
        )
        return StepView(sid, phase, sid, "shell", [], record)

    steps = [
        step("build", "pre-flight", "succeeded", "built " + "image " * 30),
        step("migrate_database_schema_expand", "deploy", "running", "applying"),
        step("production_sign_off", "deploy", "waiting", ""),
    ]
    prompt = "Sign off the production rollout once the dashboards look as they did before it " * 2
    gate = GateRecord(
        release_id=release.id, step_id="production_sign_off", run=1, kind="approval", prompt=prompt
    )
    view = ReleaseView(release=release, steps=steps, gates=[gate])
    notices = [EVENTS[2]]
    lines = lines_of(live_frame(view, notices, AT + timedelta(seconds=30)), fit_to=width)
    assert max(cell_len(line) for line in lines) <= width, "\n".join(lines)
    text = "\n".join(lines)
    assert lines[0].startswith(f"{release.id}  {release.runbook_name} → production")
    rows = {s.id: next(x for x in lines if f" {s.id} " in x) for s in steps}
    at = {rows[s.id].index(s.status) for s in steps}
    assert len(at) == 1, "the status column lines up across phases:\n" + text
    assert "30s" in rows["migrate_database_schema_expand"], "a running step's time so far"
    assert " ".join(text.split()).count(" ".join(prompt.split())) == 1, "the whole prompt"
    assert f"shipcaptain release approve {release.id} production_sign_off" in text
    notice = "release.point_of_no_return [contract] (fola) the contract migration ran"
    assert notice in " ".join(text.split()), "the notice, whole"
