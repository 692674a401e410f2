"""git_tag against a real git checkout whose origin is a bare repository."""

from __future__ import annotations

from pathlib import Path

from helpers.gitrepo import ENV, commit, git, make_repo
from shipcaptain.actions.base import StepContext
from shipcaptain.actions.git_tag import GitTagAction

action = GitTagAction()


def ctx(workdir: Path) -> StepContext:
    return StepContext(
        release_id="r1", step_id="tag", attempt=1, timeout=30, workdir=workdir, env=ENV
    )


def test_tags_the_release_commit_and_pushes_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    params = action.parse_params({"tag": "v1.4.0", "repo": "checkout"})
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.summary
    assert outcome.outputs == {"tag": "v1.4.0", "commit": head}
    assert git(repo, "cat-file", "-t", "v1.4.0") == "tag"  # annotated
    assert git(repo, "tag", "-l", "--format=%(contents:subject)", "v1.4.0") == "Release v1.4.0"
    origin = tmp_path / "origin.git"
    assert git(origin, "rev-parse", "v1.4.0^{commit}") == head


def test_same_tag_on_same_commit_is_already_done(tmp_path: Path) -> None:
    make_repo(tmp_path)
    params = action.parse_params({"tag": "v1.4.0", "repo": "checkout"})
    assert action.already_done(params, ctx(tmp_path)) is None
    assert action.run(params, ctx(tmp_path)).ok
    done = action.already_done(params, ctx(tmp_path))
    assert done is not None
    assert done.already_done
    again = action.run(params, ctx(tmp_path))
    assert again.ok
    assert again.already_done


def test_tag_created_locally_but_not_pushed_is_pushed_on_the_next_try(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v1.4.0", "-m", "Release v1.4.0")
    params = action.parse_params({"tag": "v1.4.0", "repo": "checkout"})
    assert action.already_done(params, ctx(tmp_path)) is None
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok
    assert not outcome.already_done
    assert git(tmp_path / "origin.git", "tag", "-l") == "v1.4.0"


def test_tag_on_another_commit_stops_with_both_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "v1.4.0", "-m", "an earlier try")
    git(repo, "push", "-q", "origin", "v1.4.0")
    new = commit(repo, "fix: late fix")
    params = action.parse_params({"tag": "v1.4.0", "repo": "checkout"})
    assert action.already_done(params, ctx(tmp_path)) is None
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert not outcome.retryable
    assert old[:12] in outcome.summary
    assert new[:12] in outcome.summary
    assert "fix: late fix" in outcome.detail
    assert git(repo, "rev-parse", "v1.4.0^{commit}") == old  # not moved


def test_tag_only_on_the_remote_on_another_commit_is_found(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v2.0.0", "-m", "x")
    git(repo, "push", "-q", "origin", "v2.0.0")
    git(repo, "tag", "-d", "v2.0.0")
    commit(repo, "feat: more")
    outcome = action.run(action.parse_params({"tag": "v2.0.0", "repo": "checkout"}), ctx(tmp_path))
    assert not outcome.ok
    assert "on origin on another commit" in outcome.summary


def test_unknown_release_commit_fails(tmp_path: Path) -> None:
    make_repo(tmp_path)
    params = action.parse_params({"tag": "v1", "repo": "checkout", "commit": "nope"})
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert "'nope' not found" in outcome.summary
