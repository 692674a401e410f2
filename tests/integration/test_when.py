"""Conditional steps on the engine: a false `when` skips the step with its reason, and the
steps after it run as if it had succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import Harness, harness, write_runbook

RUNBOOK = """
    name: conditional
    environment: "{{ environment }}"
    parameters:
      environment: {default: staging}
    phases:
      - id: checks
        steps:
          - id: changes
            action: shell
            with: {command: "echo '::output policies=no'"}
          - id: policy_lint
            action: shell
            needs: [changes]
            when: "steps.changes.policies == 'yes'"
            with: {command: "echo linted >> log"}
          - id: prod_only
            action: shell
            when: "environment == 'production'"
            with: {command: "echo prod >> log"}
          - id: no_policy_note
            action: shell
            needs: [changes]
            when: "steps.changes.policies == 'no'"
            with: {command: "echo no-policies >> log"}
          - id: after
            action: shell
            needs: [policy_lint, prod_only]
            with: {command: "echo after >> log"}
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def test_false_conditions_skip_with_their_reason_and_block_nothing(
    h: Harness, tmp_path: Path
) -> None:
    record = h.start(write_runbook(tmp_path, RUNBOOK))
    assert h.wait(record.id).status == "succeeded"
    runs = h.client.store.latest_step_runs(record.id)
    assert runs["policy_lint"].status == "skipped"
    assert runs["policy_lint"].summary == (
        "skipped: when \"steps.changes.policies == 'yes'\" is false"
    )
    assert runs["prod_only"].status == "skipped"
    assert runs["no_policy_note"].status == "succeeded"
    assert runs["after"].status == "succeeded"
    assert sorted((h.workdir / "log").read_text().split()) == ["after", "no-policies"]


def test_a_true_condition_runs_the_step(h: Harness, tmp_path: Path) -> None:
    record = h.start(write_runbook(tmp_path, RUNBOOK), environment="production")
    assert h.wait(record.id).status == "succeeded"
    runs = h.client.store.latest_step_runs(record.id)
    assert runs["prod_only"].status == "succeeded"
    assert "prod" in (h.workdir / "log").read_text().split()
