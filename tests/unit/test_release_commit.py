"""One commit per release: the commit CI judged is the commit tagged, dispatched and built.

Real git (a checkout with a bare repository as origin) and the GitHub double serving that
origin, as GitHub serves what was pushed to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.gitrepo import ENV, commit, git, make_repo
from shipcaptain.actions.base import Outcome, StepContext
from shipcaptain.actions.git_tag import GitTagAction
from shipcaptain.actions.github import CiGreenAction, GitHubWorkflowAction
from shipcaptain.runbook.checks import check_release_commit
from shipcaptain.runbook.model import Runbook
from shipcaptain.sandbox.doubles.github import GitHubDouble

REPO = "acme/app"
TOKEN = "t0ken-for-tests"
DEPLOY = """\
name: Deploy
on:
  workflow_dispatch:
    inputs:
      tag:
        description: Release tag
        required: true
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo build
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    checkout = make_repo(tmp_path)
    (checkout / ".github" / "workflows").mkdir(parents=True)
    (checkout / ".github" / "workflows" / "deploy.yml").write_text(DEPLOY)
    git(checkout, "add", ".github")
    git(checkout, "commit", "-q", "-m", "ci: deploy workflow")
    git(checkout, "push", "-q", "origin", "main")
    return checkout


@pytest.fixture
def gh(tmp_path: Path, repo: Path) -> Iterator[GitHubDouble]:
    with GitHubDouble(token=TOKEN, git_dir=tmp_path / "origin.git") as double:
        pushed = git(repo, "rev-parse", "origin/main")
        for check in ("test", "lint"):
            double.add_check_run(pushed, check)
        wf = double.workflow("deploy.yml")
        wf.queued_seconds = wf.running_seconds = 0
        yield double


def ctx(tmp_path: Path, step: str) -> StepContext:
    return StepContext(
        release_id="rel-1",
        step_id=step,
        attempt=1,
        timeout=30,
        workdir=tmp_path,
        env={**ENV, "GITHUB_TOKEN": TOKEN},
    )


def judged_commit(gh: GitHubDouble, tmp_path: Path) -> str:
    action = CiGreenAction()
    params = action.parse_params(
        {"repo": REPO, "api_url": gh.url, "ref": "main", "required_checks": ["test", "lint"]}
    )
    outcome = action.run(params, ctx(tmp_path, "ci_green"))
    assert outcome.ok, outcome.detail
    assert outcome.outputs["commit"] == outcome.outputs["sha"]
    return str(outcome.outputs["commit"])


def deploy(gh: GitHubDouble, tmp_path: Path, ref: str, expect_commit: str) -> Outcome:
    """Run the Deploy workflow on ``ref``, expecting it to build ``expect_commit``."""
    wf = GitHubWorkflowAction()
    params = {"repo": REPO, "api_url": gh.url, "workflow": "deploy.yml", "ref": ref}
    params |= {"inputs": {"tag": "v1.0.0"}, "expect_commit": expect_commit}
    return wf.run(wf.parse_params({**params, "poll_interval": 0.05}), ctx(tmp_path, "deploy"))


def test_an_unpushed_local_commit_is_refused_naming_both_commits(
    tmp_path: Path, repo: Path, gh: GitHubDouble
) -> None:
    judged = judged_commit(gh, tmp_path)
    local = commit(repo, "feat: not pushed, never judged by CI")
    tag = GitTagAction()
    outcome = tag.run(
        tag.parse_params({"tag": "v9.9.0", "commit": judged, "repo": "checkout"}),
        ctx(tmp_path, "tag_release"),
    )
    assert not outcome.ok
    assert not outcome.retryable
    assert f"HEAD is {local[:12]}" in outcome.summary
    assert f"the release commit (the one CI judged) is {judged[:12]}" in outcome.summary
    assert "feat: not pushed, never judged by CI" in outcome.detail
    assert "1 commit(s) CI never judged" in outcome.detail
    assert "tag_remote_commit" in outcome.detail
    assert git(repo, "tag", "-l") == ""
    assert git(tmp_path / "origin.git", "tag", "-l") == ""


def test_tag_remote_commit_tags_the_judged_commit_whatever_the_checkout(
    tmp_path: Path, repo: Path, gh: GitHubDouble
) -> None:
    judged = judged_commit(gh, tmp_path)
    commit(repo, "feat: not pushed")
    # a checkout that does not even have the judged commit: it is fetched from origin
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", "-b", "main", str(other))
    git(other, "remote", "add", "origin", str(tmp_path / "origin.git"))
    commit(other, "unrelated local history")
    tag = GitTagAction()
    for checkout in ("checkout", "other"):
        name = f"v9.9.{0 if checkout == 'checkout' else 1}"
        params = {"tag": name, "commit": judged, "repo": checkout, "tag_remote_commit": True}
        outcome = tag.run(tag.parse_params(params), ctx(tmp_path, "tag_release"))
        assert outcome.ok, outcome.summary
        assert outcome.outputs["commit"] == judged
        assert git(tmp_path / "origin.git", "rev-parse", f"{name}^{{commit}}") == judged


def test_the_judged_commit_is_tagged_dispatched_and_built(
    tmp_path: Path, repo: Path, gh: GitHubDouble
) -> None:
    judged = judged_commit(gh, tmp_path)
    tag = GitTagAction()
    tagged = tag.run(
        tag.parse_params({"tag": "v1.0.0", "commit": judged, "repo": "checkout"}),
        ctx(tmp_path, "tag_release"),
    )
    assert tagged.ok, tagged.summary
    assert tagged.outputs["commit"] == judged
    built = deploy(gh, tmp_path, "v1.0.0", judged)
    assert built.ok, built.summary
    assert built.outputs["head_sha"] == judged


def test_a_run_of_another_commit_is_refused(tmp_path: Path, repo: Path, gh: GitHubDouble) -> None:
    judged = judged_commit(gh, tmp_path)
    moved = commit(repo, "fix: pushed after CI judged main")
    git(repo, "push", "-q", "origin", "main")
    outcome = deploy(gh, tmp_path, "main", judged)
    assert not outcome.ok
    assert f"builds {moved[:12]}, not the release commit {judged[:12]}" in outcome.summary


def _runbook(commit: str) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "app",
            "phases": [
                {
                    "id": "pre",
                    "steps": [{"id": "ci", "action": "ci_green", "with": {"repo": "a/b"}}],
                },
                {
                    "id": "build",
                    "steps": [
                        {"id": "tag", "action": "git_tag", "with": {"tag": "v1", "commit": commit}}
                    ],
                },
            ],
        }
    )


def test_validate_refuses_a_tag_of_head_where_ci_judged_a_commit() -> None:
    [(path, message)] = check_release_commit(_runbook("HEAD"))
    assert path == ("phases", 1, "steps", 0, "with", "commit")
    assert 'write commit: "{{ steps.ci.commit }}"' in message
    assert check_release_commit(_runbook("{{ steps.ci.commit }}")) == []
