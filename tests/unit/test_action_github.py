"""ci_green, github_workflow and the GitHub client against the loopback GitHub double."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipcaptain.actions.base import StepContext
from shipcaptain.actions.github import CiGreenAction, GitHubWorkflowAction
from shipcaptain.errors import ActionError
from shipcaptain.integrations.github import GitHub, GitHubError
from shipcaptain.sandbox.doubles.github import GitHubDouble, Run

SHA = "a" * 40
REPO = "ValueCanvas/ValueCanvas"


@pytest.fixture
def gh() -> Iterator[GitHubDouble]:
    with GitHubDouble(token="t0ken-for-tests") as double:
        double.set_ref("heads/main", SHA)
        double.set_ref("tags/v1.4.0", SHA)
        yield double


def ctx(tmp_path: Path, progress: list[str] | None = None, step: str = "build") -> StepContext:
    return StepContext(
        release_id="rel-1",
        step_id=step,
        attempt=1,
        timeout=30,
        workdir=tmp_path,
        env={"GITHUB_TOKEN": "t0ken-for-tests"},
        progress=(progress if progress is not None else []).append,
    )


def ci(gh: GitHubDouble, **raw: Any) -> Any:
    action = CiGreenAction()
    return action, action.parse_params({"repo": REPO, "api_url": gh.url, **raw})


def test_ci_green_when_checks_statuses_and_workflow_succeeded(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    gh.add_check_run(SHA, "test")
    gh.add_check_run(SHA, "lint")
    gh.add_status(SHA, "ci/e2e")
    wf = gh.workflow("deploy.yml")
    wf.queued_seconds = wf.running_seconds = 0
    with GitHub(REPO, "t0ken-for-tests", api_url=gh.url) as client:
        client.dispatch("deploy.yml", "main", {})
    action, params = ci(gh, required_checks=["test"], workflow="deploy.yml")
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.detail
    assert outcome.outputs["sha"] == SHA
    assert outcome.outputs["green"] == ["check test", "status ci/e2e", "workflow deploy.yml"]


def test_ci_green_lists_pending_failed_and_missing_with_links(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    gh.add_check_run(SHA, "test", status="in_progress", conclusion=None)
    gh.add_check_run(SHA, "lint", conclusion="failure")
    gh.add_status(SHA, "ci/e2e", state="pending")
    action, params = ci(gh, required_checks=["test", "lint", "build"], workflow="deploy.yml")
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    problems = outcome.outputs["problems"]
    assert problems[0].startswith("check test: in_progress https://github.com/")
    assert problems[1].startswith("check lint: failure https://github.com/")
    assert problems[2] == "check build: missing"
    assert problems[3] == "status ci/e2e: pending https://ci.example.invalid/ci/e2e"
    assert problems[4] == "workflow deploy.yml: no run on main"


def test_ci_green_with_nothing_to_check_fails(gh: GitHubDouble, tmp_path: Path) -> None:
    action, params = ci(gh)
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert "nothing to check" in outcome.summary


def test_without_a_token_the_step_says_which_variable(gh: GitHubDouble, tmp_path: Path) -> None:
    action, params = ci(gh, token_env="NO_SUCH_TOKEN_VAR")
    with pytest.raises(ActionError, match="NO_SUCH_TOKEN_VAR"):
        action.run(params, ctx(tmp_path))


def test_client_waits_for_rate_limit_and_retries_server_errors(gh: GitHubDouble) -> None:
    waits: list[float] = []
    gh.rate_limit_next = 1
    gh.fail_next = 2
    with GitHub(REPO, "t0ken-for-tests", api_url=gh.url, sleep=waits.append) as client:
        assert client.commit_sha("main") == SHA
    assert len(waits) == 3
    assert 0 < waits[0] <= 3  # until the reset the double announced
    assert waits[1:] == [2.0, 4.0]  # back-off for the two 502s


def test_client_reports_bad_credentials_and_gives_up_after_retries(gh: GitHubDouble) -> None:
    with (
        GitHub(REPO, "wrong", api_url=gh.url) as client,
        pytest.raises(GitHubError, match=r"HTTP 401.*Bad credentials"),
    ):
        client.commit_sha("main")
    gh.fail_next = 10
    with (
        GitHub(REPO, "t0ken-for-tests", api_url=gh.url, retries=2, sleep=lambda _s: None) as c,
        pytest.raises(GitHubError, match="gave up after 3 tries"),
    ):
        c.commit_sha("main")


def workflow(gh: GitHubDouble, **raw: Any) -> Any:
    action = GitHubWorkflowAction()
    return action, action.parse_params(
        {
            "repo": REPO,
            "api_url": gh.url,
            "workflow": "deploy.yml",
            "ref": "v1.4.0",
            "inputs": {"tag": "v1.4.0"},
            "poll_interval": 0.1,
            **raw,
        }
    )


def test_workflow_is_dispatched_and_followed_to_success(gh: GitHubDouble, tmp_path: Path) -> None:
    progress: list[str] = []
    action, params = workflow(gh)
    outcome = action.run(params, ctx(tmp_path, progress))
    assert outcome.ok, outcome.summary
    assert len(gh.dispatches) == 1
    assert gh.dispatches[0]["inputs"]["tag"] == "v1.4.0"
    assert gh.dispatches[0]["inputs"]["distinct_id"].startswith("sc-")
    run_id = gh.runs[0].id
    assert outcome.outputs["run_id"] == run_id
    assert outcome.outputs["run_url"] == f"https://github.com/{REPO}/actions/runs/{run_id}"
    assert outcome.outputs["head_sha"] == SHA
    statuses = [p.split(": ", 1)[1] for p in progress if p.startswith(f"run {run_id}: ")]
    assert statuses[-1] == "completed"
    assert "in_progress" in statuses


def test_workflow_failure_names_the_failed_jobs_and_the_link(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    gh.workflow("deploy.yml").conclusion = "failure"
    gh.workflow("deploy.yml").failing_job = "push-image"
    action, params = workflow(gh)
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert not outcome.retryable
    assert "failure (failed jobs: push-image)" in outcome.summary
    assert outcome.outputs["run_url"] in outcome.summary
    assert outcome.outputs["failed_jobs"] == ["push-image"]


def test_a_second_try_follows_the_run_of_the_first_and_does_not_dispatch(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    action, params = workflow(gh)
    first = action.run(params, ctx(tmp_path))
    progress: list[str] = []
    second = action.run(params, ctx(tmp_path, progress))
    assert len(gh.dispatches) == 1
    assert second.outputs["run_id"] == first.outputs["run_id"]
    assert any("started before" in p for p in progress)
    # another step (or another release) gets its own run
    third = action.run(params, ctx(tmp_path, step="build_again"))
    assert len(gh.dispatches) == 2
    assert third.outputs["run_id"] != first.outputs["run_id"]


def test_dispatch_to_an_unknown_ref_fails_clearly(gh: GitHubDouble, tmp_path: Path) -> None:
    action, params = workflow(gh, ref="v9.9.9")
    with pytest.raises(GitHubError, match=r"HTTP 422.*No ref found for: v9\.9\.9"):
        action.run(params, ctx(tmp_path))


def test_the_workflow_s_outputs_artifact_becomes_the_step_s_outputs(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    def uploads(run: Run) -> dict[str, dict[str, str]]:
        digest = "sha256:" + "ab" * 32
        return {
            "release-outputs": {
                "outputs.json": json.dumps({"tag": run.inputs["tag"], "images": {"api": digest}})
            },
            "coverage": {"index.html": "<html></html>"},
        }

    gh.workflow("deploy.yml").artifacts = uploads
    action, params = workflow(gh, outputs_artifact="release-outputs")
    outcome = action.run(params, ctx(tmp_path))
    assert outcome.ok, outcome.summary
    assert outcome.outputs["outputs"] == {
        "tag": "v1.4.0",
        "images": {"api": "sha256:" + "ab" * 32},
    }

    missing = action.parse_params({**params.model_dump(), "outputs_artifact": "sbom"})
    with pytest.raises(ActionError, match=r"uploaded no artifact named 'sbom'"):
        action.run(missing, ctx(tmp_path))
    no_file = action.parse_params(
        {**params.model_dump(), "outputs_artifact": "coverage", "outputs_file": "outputs.json"}
    )
    with pytest.raises(ActionError, match=r"artifact 'coverage' of run \d+ has no outputs.json"):
        action.run(no_file, ctx(tmp_path))


def test_an_artifact_link_is_fetched_without_the_token(gh: GitHubDouble) -> None:
    gh.workflow("deploy.yml").artifacts = lambda run: {"a": {"f.txt": "hello"}}
    gh.workflow("deploy.yml").queued_seconds = gh.workflow("deploy.yml").running_seconds = 0
    with GitHub(REPO, "t0ken-for-tests", api_url=gh.url) as client:
        client.dispatch("deploy.yml", "main", {})
        (artifact,) = client.artifacts(gh.runs[0].id)
        link = client.request("GET", f"actions/artifacts/{artifact['id']}/zip")
        assert link.status_code == 302
        # the storage link refuses the API token, as GitHub's storage does
        with_token = httpx.get(
            link.headers["location"], headers={"Authorization": "Bearer t0ken-for-tests"}
        )
        assert with_token.status_code == 400
        archive = client.download_artifact(int(artifact["id"]))
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.read("f.txt") == b"hello"
