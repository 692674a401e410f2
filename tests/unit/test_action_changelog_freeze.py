"""changelog and freeze against a real git repository."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers.gitrepo import ENV, commit, git, make_repo
from shipcaptain.actions.base import StepContext
from shipcaptain.actions.changelog import ChangelogAction
from shipcaptain.actions.preflight import FreezeAction
from shipcaptain.sandbox.doubles.github import GitHubDouble, record_pushes


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
    repo = make_repo(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    action = FreezeAction()
    params = action.parse_params(
        {
            "cutoff": "2099-01-01T00:00:00Z",
            "branch": "origin/main",
            "repo": "checkout",
            "head_at_cutoff": head,
        }
    )
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.summary
    assert outcome.outputs["announce"] == (
        "Feature freeze for 1.4.0: no merges to origin/main after 2099-01-01T00:00:00+00:00."
    )
    assert outcome.outputs["late_commits"] == []


def test_freeze_needs_a_record_of_the_branch_at_the_cutoff() -> None:
    with pytest.raises(ValueError, match="a commit's date says when it was written"):
        FreezeAction().parse_params({"cutoff": "2026-11-24T00:00:00Z"})


def test_freeze_with_a_bad_cutoff_fails_without_retry(tmp_path: Path) -> None:
    make_repo(tmp_path)
    action = FreezeAction()
    params = action.parse_params(
        {"cutoff": "yesterday", "repo": "checkout", "head_at_cutoff": "HEAD"}
    )
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert not outcome.retryable
    assert "yesterday" in outcome.summary


def test_a_back_dated_commit_pushed_after_the_cutoff_is_late(tmp_path: Path) -> None:
    """Written "before" the cutoff (its author and committer dates say so), pushed after:
    the head recorded at the cutoff does not contain it, so it is late."""
    repo = make_repo(tmp_path)
    head_at_cutoff = git(repo, "rev-parse", "HEAD")
    late = commit(repo, "feat: sneaked in", date="2026-11-20T10:00:00Z", author="Dev")
    git(repo, "push", "-q", "origin", "main")
    action = FreezeAction()
    params = action.parse_params(
        {
            "cutoff": "2026-11-24T00:00:00Z",
            "branch": "origin/main",
            "repo": "checkout",
            "head_at_cutoff": head_at_cutoff,
            "web_url": "https://github.com/acme/app",
        }
    )
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert outcome.outputs["late_commits"] == [late]
    assert outcome.outputs["late"][0]["author"] == "Dev"
    assert outcome.outputs["late"][0]["url"] == f"https://github.com/acme/app/commit/{late}"
    assert f"{late[:12]} Dev: feat: sneaked in" in outcome.detail
    assert f"https://github.com/acme/app/commit/{late}" in outcome.detail


def test_a_rewritten_branch_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    commit(repo, "feat: before the cutoff")
    git(repo, "push", "-q", "origin", "main")
    head_at_cutoff = git(repo, "rev-parse", "HEAD")
    git(repo, "reset", "-q", "--hard", first)
    commit(repo, "feat: rewritten")
    git(repo, "push", "-q", "--force", "origin", "main")
    action = FreezeAction()
    params = {
        "cutoff": "2026-11-24T00:00:00Z",
        "repo": "checkout",
        "head_at_cutoff": head_at_cutoff,
    }
    outcome = action.run(action.parse_params(params), ctx(tmp_path))
    assert not outcome.ok
    assert "rewritten" in outcome.summary


def test_github_s_record_of_pushes_tells_what_came_after_the_cutoff(tmp_path: Path) -> None:
    """The bare origin records pushes as GitHub does; the freeze asks the GitHub double's
    activity API for the head at the cutoff, then lists the back-dated commit pushed
    after it with author, link, and who pushed it when."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, env=ENV)
    record_pushes(origin)
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "init", "-q", "-b", "main", str(checkout)], check=True, env=ENV)
    git(checkout, "remote", "add", "origin", str(origin))
    commit(checkout, "chore: initial")
    git(checkout, "push", "-q", "origin", "main")
    time.sleep(0.05)
    cutoff = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    late = commit(checkout, "feat: written last week", date="2026-11-20T10:00:00Z", author="Dev")
    git(checkout, "push", "-q", "origin", "main", env={"SANDBOX_PUSHER": "dev"})
    action = FreezeAction()
    params = action.parse_params(
        {"cutoff": cutoff, "branch": "origin/main", "repo": "checkout", "github": "acme/app"}
    )
    with GitHubDouble(token="t0ken", git_dir=origin) as gh:
        step = StepContext(
            release_id="r1",
            step_id="freeze",
            attempt=1,
            timeout=30,
            workdir=tmp_path,
            env={**ENV, "GITHUB_API_URL": gh.url, "GITHUB_TOKEN": "t0ken"},
        )
        outcome = action.run(params, step)
        assert not outcome.ok
        assert outcome.outputs["late_commits"] == [late]
        entry = outcome.outputs["late"][0]
        assert (entry["author"], entry["pushed_by"]) == ("Dev", "dev")
        assert entry["url"] == f"https://github.com/acme/app/commit/{late}"
        pushed_at = datetime.fromisoformat(entry["pushed_at"].replace("Z", "+00:00"))
        assert pushed_at > datetime.fromisoformat(cutoff)  # when it was pushed, not written
        assert f"(pushed {entry['pushed_at']} by dev)" in outcome.detail
        # before that push the freeze held; an earlier cutoff makes the first push late too
        early = action.parse_params({**params.model_dump(), "cutoff": "2000-01-01T00:00:00Z"})
        assert len(action.run(early, step).outputs["late_commits"]) == 2
