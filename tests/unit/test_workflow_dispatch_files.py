"""Dispatching real workflow files as they are written: the GitHub double reads each file
at the dispatched ref (real git, a bare repository standing for GitHub's) and answers as
GitHub does; github_workflow sends the step's inputs and nothing more.

The cases are data (tests/data/workflows/<file>.cases.yaml, sources in SOURCES.md)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from helpers.gitrepo import ENV, git, make_repo
from shipcaptain.actions.base import StepContext
from shipcaptain.actions.github import GitHubWorkflowAction
from shipcaptain.integrations.github import GitHub, GitHubError
from shipcaptain.sandbox.doubles.github import GitHubDouble

DATA = Path(__file__).resolve().parents[1] / "data" / "workflows"
WORKFLOWS = sorted(
    p.name for p in DATA.iterdir() if p.suffix in (".yml", ".yaml") and ".cases." not in p.name
)
CASES = [
    (name, number, case)
    for name in WORKFLOWS
    for number, case in enumerate(YAML(typ="safe").load((DATA / f"{name}.cases.yaml").read_text()))
]
REPO = "acme/app"
TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose main holds every workflow file, pushed to a bare origin."""
    root = tmp_path_factory.mktemp("workflows")
    checkout = make_repo(root)
    target = checkout / ".github" / "workflows"
    target.mkdir(parents=True)
    for name in WORKFLOWS:
        shutil.copyfile(DATA / name, target / name)
    git(checkout, "add", ".github")
    git(checkout, "commit", "-q", "-m", "ci: workflows")
    git(checkout, "push", "-q", "origin", "main")
    return root / "origin.git"


@pytest.fixture
def gh(origin: Path) -> Iterator[GitHubDouble]:
    with GitHubDouble(token=TOKEN, git_dir=origin) as double:
        for name in WORKFLOWS:
            behaviour = double.workflow(name)
            behaviour.queued_seconds = behaviour.running_seconds = 0.05
        yield double


def test_every_workflow_has_its_cases() -> None:
    assert len(WORKFLOWS) >= 5
    sources = (DATA / "SOURCES.md").read_text()
    for name in WORKFLOWS:
        assert f"`{name}`" in sources, f"{name} has no source in SOURCES.md"


@pytest.mark.parametrize(("name", "number", "case"), CASES, ids=[f"{n}-{i}" for n, i, _ in CASES])
def test_the_double_answers_a_dispatch_as_github_does(
    gh: GitHubDouble, name: str, number: int, case: dict[str, Any]
) -> None:
    with GitHub(REPO, TOKEN, api_url=gh.url, retries=0) as client:
        if case["status"] == 204:
            client.dispatch(name, "main", case["inputs"])
            assert len(gh.runs) == 1
            if "run_inputs" in case:
                assert gh.runs[0].inputs == case["run_inputs"]
        else:
            with pytest.raises(GitHubError) as refused:
                client.dispatch(name, "main", case["inputs"])
            assert refused.value.status == case["status"]
            assert refused.value.message.endswith(case["message"])
            assert gh.runs == []


def ctx(tmp_path: Path) -> StepContext:
    return StepContext(
        release_id="rel-1",
        step_id="deploy",
        attempt=1,
        timeout=30,
        workdir=tmp_path,
        env={**ENV, "GITHUB_TOKEN": TOKEN},
    )


def run_step(gh: GitHubDouble, tmp_path: Path, name: str, **raw: Any) -> Any:
    action = GitHubWorkflowAction()
    params = {"repo": REPO, "api_url": gh.url, "workflow": name, "ref": "main", **raw}
    return action.run(action.parse_params({"poll_interval": 0.05, **params}), ctx(tmp_path))


@pytest.mark.parametrize("name", WORKFLOWS)
def test_github_workflow_runs_each_dispatchable_file_as_written(
    gh: GitHubDouble, tmp_path: Path, name: str
) -> None:
    cases = [c for n, _, c in CASES if n == name]
    accepted = [c for c in cases if c["status"] == 204]
    refused = [c for c in cases if c["status"] == 422]
    for case in accepted:
        outcome = run_step(gh, tmp_path, name, inputs=case["inputs"])
        assert outcome.ok, outcome.summary
        assert gh.dispatches[-1]["inputs"] == case["inputs"]  # no distinct_id added
        assert outcome.outputs["run_id"] == gh.runs[-1].id
    for case in refused:
        outcome = run_step(gh, tmp_path, name, inputs=case["inputs"])
        assert not outcome.ok
        assert not outcome.retryable
        assert case["message"] in outcome.summary
        fix = outcome.detail
        if "Unexpected inputs" in case["message"]:
            assert "remove the others from the step's `inputs`" in fix
        elif "Required input" in case["message"]:
            assert "add it to the step's `inputs`" in fix
        elif "workflow_dispatch" in case["message"]:
            assert "add `workflow_dispatch:` to its `on:` triggers" in fix
        else:
            assert "options" in fix
    assert len(gh.runs) == len(accepted)


def test_the_file_is_read_at_the_dispatched_ref(tmp_path: Path) -> None:
    """A tag made before the workflow declared an input refuses that input there."""
    checkout = make_repo(tmp_path)
    workflows = checkout / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copyfile(DATA / "uv-sync-python-releases.yml", workflows / "deploy.yml")
    git(checkout, "add", ".github")
    git(checkout, "commit", "-q", "-m", "ci: deploy without inputs")
    git(checkout, "tag", "v1.0.0")
    shutil.copyfile(DATA / "csm-operator-release.yaml", workflows / "deploy.yml")
    git(checkout, "commit", "-q", "-am", "ci: deploy takes a version")
    git(checkout, "push", "-q", "origin", "main", "v1.0.0")
    with (
        GitHubDouble(token=TOKEN, git_dir=tmp_path / "origin.git") as gh,
        GitHub(REPO, TOKEN, api_url=gh.url, retries=0) as client,
    ):
        client.dispatch("deploy.yml", "main", {"version": "1.0.0"})
        with pytest.raises(GitHubError, match=r'Unexpected inputs provided: \["version"\]'):
            client.dispatch("deploy.yml", "v1.0.0", {"version": "1.0.0"})
        with pytest.raises(GitHubError) as missing:
            client.dispatch("nightly.yml", "main", {})
        assert missing.value.status == 404
