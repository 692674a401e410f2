"""The freeze is checked again right before tagging: a commit that reaches main during the
release (back-dated, so its dates say "before the cutoff") stops the tag."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.gitrepo import ENV, git, make_repo
from helpers.releases import Harness, harness, write_runbook

RUNBOOK = """
    name: app
    parameters:
      head_at_cutoff: {required: true}
    guards:
      no_late_merges:
        check:
          action: freeze
          with:
            cutoff: "2026-11-24T00:00:00Z"
            repo: checkout
            head_at_cutoff: "{{ head_at_cutoff }}"
    phases:
      - id: preflight
        steps:
          - id: freeze
            action: freeze
            with:
              cutoff: "2026-11-24T00:00:00Z"
              repo: checkout
              head_at_cutoff: "{{ head_at_cutoff }}"
          - id: late_merge
            needs: [freeze]
            action: shell
            with:
              command: >-
                cd {{ runbook.name }}-other && echo late >> late.txt && git add late.txt &&
                GIT_AUTHOR_DATE=2026-11-20T10:00:00Z GIT_COMMITTER_DATE=2026-11-20T10:00:00Z
                git commit -q -m "fix: merged during the release" && git push -q origin main
      - id: build
        steps:
          - id: tag
            action: git_tag
            guards: [no_late_merges]
            with: {tag: v1.0.0, repo: checkout}
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in ENV.items() if k.startswith("GIT_") or k == "HOME"})
    try:
        with harness(engine_database_url, tmp_path) as running:
            yield running
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_merge_during_the_release_stops_the_tag(h: Harness, tmp_path: Path) -> None:
    checkout = make_repo(h.workdir)
    git(h.workdir, "clone", "-q", str(h.workdir / "origin.git"), "app-other")
    head = git(checkout, "rev-parse", "HEAD")
    record = h.start(write_runbook(tmp_path, RUNBOOK), head_at_cutoff=head)
    assert h.wait(record.id).status == "failed"
    steps = h.client.store.latest_step_runs(record.id)
    assert steps["freeze"].status == "succeeded"
    assert steps["late_merge"].status == "succeeded"
    assert steps["tag"].status == "failed"
    assert "guard no_late_merges not met: 1 commits reached origin/main" in steps["tag"].summary
    assert git(h.workdir / "origin.git", "tag", "-l") == ""  # nothing tagged
