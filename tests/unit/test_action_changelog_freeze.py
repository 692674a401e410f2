"""changelog and freeze against a real git repository."""

from __future__ import annotations

from pathlib import Path

from helpers.gitrepo import ENV, commit, git, make_repo
from shipcaptain.actions.base import StepContext
from shipcaptain.actions.changelog import ChangelogAction
from shipcaptain.actions.preflight import FreezeAction


def ctx(workdir: Path) -> StepContext:
    return StepContext(
        release_id="r1",
        step_id="s",
        attempt=1,
        timeout=30,
        workdir=workdir,
        env=ENV,
        release_values={"version": "1.4.0"},
    )


def test_changelog_groups_commits_and_lists_new_migrations(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v1.3.0", "-m", "x")
    commit(repo, "feat(canvas): shared cursors (#41)", author="Dev")
    commit(repo, "fix: rounding of invoices (#42)", "billing.txt", author="Fola")
    commit(repo, "-- phase: expand\nalter table", "supabase/migrations/20261101_add_col.sql")
    commit(repo, "drop", "supabase/migrations/20261102_contract_old.sql")
    commit(repo, "tidy up")
    git(repo, "tag", "-a", "v1.4.0", "-m", "x")
    action = ChangelogAction()
    params = action.parse_params(
        {"tag": "v1.4.0", "repo": "checkout", "migrations_dir": "supabase/migrations"}
    )
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.summary
    text = outcome.outputs["text"]
    assert outcome.outputs["previous_tag"] == "v1.3.0"
    assert outcome.outputs["commits"] == 5
    assert "### Features\n- **canvas**: shared cursors (#41), Dev" in text
    assert "### Fixes\n- rounding of invoices (#42), Fola" in text
    assert "### Other" in text
    assert "tidy up" in text
    assert outcome.outputs["migrations"] == [
        {"path": "supabase/migrations/20261101_add_col.sql", "phase": "expand"},
        {"path": "supabase/migrations/20261102_contract_old.sql", "phase": "contract"},
    ]
    assert "initial" not in text  # before the previous tag


def test_changelog_without_a_previous_tag_fails(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v1.0.0", "-m", "x")
    action = ChangelogAction()
    outcome = action.run(action.parse_params({"tag": "v1.0.0", "repo": "checkout"}), ctx(tmp_path))
    assert not outcome.ok
    assert "previous_tag" in outcome.summary


def test_freeze_passes_and_gives_the_announcement_to_post(tmp_path: Path) -> None:
    make_repo(tmp_path)  # its only commit was made just now
    action = FreezeAction()
    params = action.parse_params(
        {"cutoff": "2099-01-01T00:00:00Z", "branch": "origin/main", "repo": "checkout"}
    )
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.summary
    assert outcome.outputs["announce"] == (
        "Feature freeze for 1.4.0: no merges to origin/main after 2099-01-01T00:00:00+00:00."
    )
    assert outcome.outputs["late_commits"] == []


def test_freeze_with_a_bad_cutoff_fails_without_retry(tmp_path: Path) -> None:
    make_repo(tmp_path)
    action = FreezeAction()
    params = action.parse_params({"cutoff": "yesterday", "repo": "checkout"})
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert not outcome.retryable
    assert "yesterday" in outcome.summary


def test_freeze_lists_commits_after_the_cutoff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    late = commit(repo, "feat: sneaked in", date="2026-11-25T10:00:00Z", author="Dev")
    git(repo, "push", "-q", "origin", "main")
    action = FreezeAction()
    params = action.parse_params(
        {"cutoff": "2026-11-24T00:00:00Z", "branch": "origin/main", "repo": "checkout"}
    )
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert late in outcome.outputs["late_commits"]
    assert "feat: sneaked in" in outcome.detail
    assert "Dev" in outcome.detail
