"""ci_green, github_workflow and the GitHub client against the loopback GitHub double."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipcaptain.actions.base import StepContext
from shipcaptain.actions.github import CiGreenAction, GitHubWorkflowAction
from shipcaptain.errors import ActionError
from shipcaptain.integrations.github import GitHub, GitHubError, GitHubUncertain
from shipcaptain.sandbox.doubles.github import GitHubDouble, Run

SHA = "a" * 40
REPO = "ValueCanvas/ValueCanvas"


DEPLOY = """\
name: Deploy
run-name: Deploy ${{ inputs.tag }}
on:
  workflow_dispatch:
    inputs:
      tag: {description: Release tag, required: false}
"""


@pytest.fixture
def gh() -> Iterator[GitHubDouble]:
    with GitHubDouble(token="t0ken-for-tests") as double:
        double.set_ref("heads/main", SHA)
        double.set_ref("tags/v1.4.0", SHA)
        double.workflow("deploy.yml").definition = DEPLOY
        yield double


def ctx(
    tmp_path: Path,
    progress: list[str] | None = None,
    step: str = "build",
    first_started: float | None = None,
) -> StepContext:
    return StepContext(
        release_id="rel-1",
        step_id=step,
        attempt=1,
        timeout=30,
        workdir=tmp_path,
        env={"GITHUB_TOKEN": "t0ken-for-tests"},
        progress=(progress if progress is not None else []).append,
        first_started=lambda: first_started,
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
    # only the step's inputs: a workflow written without shipcaptain in mind accepts them
    assert gh.dispatches[0]["inputs"] == {"tag": "v1.4.0"}
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
    # runs that are not this step's: another user's dispatch, a push build on the tag
    gh.record_run("deploy.yml", "v1.4.0", "success", age=5, event="workflow_dispatch")
    gh.record_run("deploy.yml", "v1.4.0", "success", age=5, event="push", actor=gh.login)
    started = time.time()
    action, params = workflow(gh)
    first = action.run(params, ctx(tmp_path))
    assert first.outputs["run_id"] == gh.runs[-1].id
    progress: list[str] = []
    # the step ran before (a crash, a resume): it looks for its run before dispatching
    second = action.run(params, ctx(tmp_path, progress, first_started=started))
    assert len(gh.dispatches) == 1
    assert second.outputs["run_id"] == first.outputs["run_id"]
    assert any("started before" in p for p in progress)
    # a step that never ran before dispatches its own
    third = action.run(params, ctx(tmp_path, step="build_again"))
    assert len(gh.dispatches) == 2
    assert third.outputs["run_id"] != first.outputs["run_id"]


def test_a_failed_run_of_an_earlier_try_is_not_taken_again(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    gh.workflow("deploy.yml").conclusion = "failure"
    action, params = workflow(gh)
    started = time.time()
    assert not action.run(params, ctx(tmp_path)).ok
    # runs from now on succeed; the first one stays failed
    gh.workflows["deploy.yml"] = dataclasses.replace(
        gh.workflow("deploy.yml"), conclusion="success"
    )
    again = action.run(params, ctx(tmp_path, first_started=started))
    assert again.ok, again.summary
    assert len(gh.dispatches) == 2


def test_dispatch_to_an_unknown_ref_fails_clearly(gh: GitHubDouble, tmp_path: Path) -> None:
    action, params = workflow(gh, ref="v9.9.9")
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert not outcome.retryable
    assert re.search(r"HTTP 422.*No ref found for: v9\.9\.9", outcome.summary)
    assert "push it first" in outcome.detail


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


def test_a_dispatch_whose_answer_is_lost_starts_exactly_one_run(
    gh: GitHubDouble, tmp_path: Path
) -> None:
    """GitHub receives the dispatch and acts on it, but its answer comes after the client's
    timeout: the step does not send it again, it finds the run the dispatch started."""
    gh.dispatch_answer_delay = 1.5
    progress: list[str] = []
    action, params = workflow(gh, request_timeout=0.5)
    outcome = action.run(params, ctx(tmp_path, progress))
    assert outcome.ok, outcome.summary
    assert len(gh.dispatches) == 1
    assert len(gh.runs) == 1
    assert outcome.outputs["run_id"] == gh.runs[0].id
    assert any("may have reached GitHub" in p for p in progress)


def test_a_dispatch_answered_502_is_not_sent_again(gh: GitHubDouble, tmp_path: Path) -> None:
    """A 5xx to a POST says nothing about whether it was done: no second POST; the step
    looks for a run, and says so when none appears."""
    gh.fail_next_dispatches = 1
    action, params = workflow(gh, find_within=0.3)
    outcome = action.run(params, ctx(tmp_path))
    assert not outcome.ok
    assert "may not have reached GitHub" in outcome.summary
    assert gh.dispatches == []


class Scripted:
    """A transport that answers from a script: an exception to raise or a status."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.method)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        headers = {"x-ratelimit-remaining": "0", "retry-after": "0"} if step == 429 else {}
        return httpx.Response(step, json={"sha": SHA, "message": "x"}, headers=headers)


def scripted_client(script: Scripted) -> GitHub:
    return GitHub(
        REPO, "t", api_url="https://github.invalid", sleep=lambda _s: None,
        transport=httpx.MockTransport(script),
    )  # fmt: skip


def test_reads_are_retried_after_transport_errors_and_5xx() -> None:
    script = Scripted(httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut"), 502, 200)
    with scripted_client(script) as client:
        assert client.commit_sha("main") == SHA
    assert script.calls == ["GET"] * 4


def test_a_write_is_sent_again_only_when_nothing_was_sent() -> None:
    script = Scripted(httpx.ConnectError("refused"), httpx.ConnectTimeout("no route"), 429, 204)
    with scripted_client(script) as client:
        client.dispatch("deploy.yml", "main", {})
    assert script.calls == ["POST"] * 4
    for lost in (httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut"), 500):
        script = Scripted(lost, 204)
        with scripted_client(script) as client, pytest.raises(GitHubUncertain):
            client.dispatch("deploy.yml", "main", {})
        assert script.calls == ["POST"]
