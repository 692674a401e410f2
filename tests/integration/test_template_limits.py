"""A template that only goes past the sandbox's limits with the release's values fails its
step (or its guard) with the sandbox's message when the release runs: never a traceback,
never an engine that stops, never a command that ran."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import Harness, harness, write_runbook


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def test_a_value_that_takes_a_template_past_its_limits_fails_the_step(
    h: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: limits
        parameters:
          times: {type: integer, default: 3}
        guards:
          small:
            check: {action: shell, with: {command: "test {{ ('x' * times)|length }} -lt 9"}}
        phases:
          - id: p
            steps:
              - id: guarded
                action: shell
                guards: [small]
                on_failure: continue
                with: {command: "touch guarded"}
              # after the guarded step: a failure that halts the release would otherwise
              # race with the guarded step's start and skip it
              - id: repeat
                action: shell
                needs: [guarded]
                with: {command: "echo {{ 'x' * times }} > out"}
        """,
    )
    with caplog.at_level(logging.WARNING):
        release = h.start(runbook, times=str(10**10))
        final = h.wait(release.id)
    assert final.status == "failed"
    runs = h.client.store.latest_step_runs(release.id)
    assert runs["repeat"].status == "failed"
    assert runs["repeat"].summary.startswith("cannot fill in parameters: ")
    assert "the repeated value would be 10,000,000,000 long" in runs["repeat"].summary
    assert runs["guarded"].status == "failed"
    assert runs["guarded"].summary.startswith("guard small: cannot fill in its check: ")
    assert not (h.workdir / "out").exists()
    assert not (h.workdir / "guarded").exists()
    assert "Traceback" not in caplog.text

    # the same runbook with a small value runs
    fine = h.start(runbook, times="3")
    assert h.wait(fine.id).status == "succeeded"
    assert (h.workdir / "out").read_text() == "xxx\n"
