"""Incident deadlines from the SLA table and the SLA report, on a clock the test sets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from shipcaptain.errors import UsageError
from shipcaptain.incidents import (
    DEFAULT_SLAS,
    breached,
    clock_text,
    deadlines,
    new_incident,
    sla_report,
)
from shipcaptain.runbook.loader import load_runbook_file

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_the_demo_runbook_sla_table_is_the_spec() -> None:
    path = resources.files("shipcaptain.sandbox") / "assets" / "valuecanvas.yaml"
    slas = load_runbook_file(str(path)).runbook.slas
    assert (slas["P1"].acknowledge, slas["P1"].mitigate) == (300, 1800)
    assert (slas["P2"].acknowledge, slas["P2"].mitigate) == (900, 7200)
    assert {k: (v.acknowledge, v.mitigate) for k, v in DEFAULT_SLAS.items()} == {
        "P1": (300, 1800),
        "P2": (900, 7200),
    }


@pytest.mark.parametrize(
    ("severity", "ack", "mitigate"),
    [
        ("P1", timedelta(minutes=5), timedelta(minutes=30)),
        ("P2", timedelta(minutes=15), timedelta(hours=2)),
    ],
)
def test_deadlines_come_from_the_sla_table(
    severity: str, ack: timedelta, mitigate: timedelta
) -> None:
    inc = new_incident(
        slas=DEFAULT_SLAS, severity=severity, summary="api down", opened_by="sam", opened_at=T0
    )
    assert inc.acknowledge_by == T0 + ack
    assert inc.mitigate_by == T0 + mitigate
    first, second = deadlines(inc)
    assert (first.what, first.due, first.remind_at) == ("acknowledge", T0 + ack, T0 + ack * 0.8)
    assert (second.what, second.due) == ("mitigate", T0 + mitigate)


def test_unknown_severity_and_empty_summary_are_refused() -> None:
    with pytest.raises(UsageError, match=r"unknown severity 'P9'.*P1, P2"):
        new_incident(slas=DEFAULT_SLAS, severity="P9", summary="x", opened_by="s", opened_at=T0)
    with pytest.raises(UsageError, match="summary"):
        new_incident(slas=DEFAULT_SLAS, severity="P1", summary=" ", opened_by="s", opened_at=T0)


def test_breach_follows_the_clock() -> None:
    inc = new_incident(slas=DEFAULT_SLAS, severity="P1", summary="x", opened_by="s", opened_at=T0)
    assert not breached(inc, "acknowledge", T0 + timedelta(minutes=4, seconds=59))
    assert breached(inc, "acknowledge", T0 + timedelta(minutes=5, seconds=1))
    assert "acknowledge BREACHED" in clock_text(inc, T0 + timedelta(minutes=6))
    assert "acknowledge by 09:05:00Z (in 4m)" in clock_text(inc, T0 + timedelta(minutes=1))
    acked = replace(inc, acknowledged_at=T0 + timedelta(minutes=2), acknowledged_by="sam")
    assert not breached(acked, "acknowledge", T0 + timedelta(hours=1))  # done in time stays met
    assert breached(acked, "mitigate", T0 + timedelta(minutes=31))
    assert "acknowledged after 2m (SLA 5m: met)" in clock_text(acked, T0 + timedelta(hours=1))


def test_sla_report_times_and_verdicts() -> None:
    base = new_incident(slas=DEFAULT_SLAS, severity="P1", summary="x", opened_by="s", opened_at=T0)
    kept = replace(
        base,
        id="inc-kept",
        acknowledged_at=T0 + timedelta(minutes=3),
        mitigated_at=T0 + timedelta(minutes=20),
    )
    late = replace(
        base,
        id="inc-late",
        acknowledged_at=T0 + timedelta(minutes=7),
        mitigated_at=T0 + timedelta(minutes=45),
    )
    running = replace(base, id="inc-running")
    now = T0 + timedelta(minutes=10)
    report = {line.incident.id: line for line in sla_report([kept, late, running], now)}
    assert report["inc-kept"].time_to_acknowledge == 180
    assert report["inc-kept"].time_to_mitigate == 1200
    assert (report["inc-kept"].acknowledge_met, report["inc-kept"].mitigate_met) == (True, True)
    assert (report["inc-late"].acknowledge_met, report["inc-late"].mitigate_met) == (False, False)
    # not acknowledged 10 minutes in: missed; mitigation still within its 30 minutes
    assert (report["inc-running"].acknowledge_met, report["inc-running"].mitigate_met) == (
        False,
        None,
    )
