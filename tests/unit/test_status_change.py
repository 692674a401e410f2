"""How an event's status change reads in timelines (CLI, evidence report, dashboard)."""

from __future__ import annotations

from shipcaptain.records import status_change


def test_a_status_change_reads_before_then_after() -> None:
    assert status_change({"before": "running", "after": "succeeded"}) == "running → succeeded"


def test_nothing_before_reads_new() -> None:
    assert status_change({"before": None, "after": "pending"}) == "new → pending"


def test_an_event_without_a_status_records_no_change() -> None:
    assert status_change({"status": "approved"}) == ""


def test_a_decision_at_a_waiting_gate_is_not_a_status_change() -> None:
    # gates.decide records the status the decision was made in, and no status after
    assert status_change({"decision": "approve", "before": "waiting"}) == ""
