"""GitHub actions: ``ci_green`` (is the release commit green?) and ``github_workflow``
(start a workflow and follow its run to the end).

Both talk to the GitHub REST API (``api_url`` or ``$GITHUB_API_URL`` for GitHub Enterprise)
with the token in the environment variable ``token_env`` (``GITHUB_TOKEN`` by default).

``github_workflow`` works with a workflow as it is written: it sends the step's inputs
and nothing else (GitHub refuses an input the workflow does not declare). It finds the run
its dispatch started as GitHub records it: event ``workflow_dispatch``, on the step's ref,
by the token's user, and not there before the dispatch. A dispatch whose answer was lost
(a timeout after GitHub received it) is reconciled by looking for that run, never by
sending it again; after a crash or a resume the step first looks for a run it started
then (since the step first started) and follows it. ``marker_input`` names an input the
workflow declares and shows in its ``run-name``, for a marker unique to the release and
step, where several releases may dispatch the same workflow on the same ref at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.errors import ActionError
from shipcaptain.integrations.github import (
    DEFAULT_API_URL,
    GitHub,
    GitHubError,
    GitHubUncertain,
)
from shipcaptain.runbook.durations import Duration

OK_CONCLUSIONS = {"success", "neutral", "skipped"}


class GitHubParams(ActionParams):
    repo: str = Field(min_length=3, description="Repository as `owner/name`.")
    api_url: str | None = Field(
        default=None,
        description="REST API base URL; for GitHub Enterprise `https://HOST/api/v3`. "
        f"Default: the environment variable `GITHUB_API_URL`, else {DEFAULT_API_URL}.",
    )
    token_env: str = Field(
        default="GITHUB_TOKEN", description="Environment variable holding the API token."
    )
    request_timeout: Duration = Field(
        default=30.0, description="Limit of one request to GitHub (within the step's timeout)."
    )


def _client(params: GitHubParams, ctx: StepContext) -> GitHub:
    token = ctx.getenv(params.token_env)
    if not token:
        raise ActionError(
            f"no GitHub token: set the environment variable {params.token_env} "
            "(or name another one with token_env)"
        )
    api_url = params.api_url or ctx.getenv("GITHUB_API_URL") or DEFAULT_API_URL
    timeout = min(ctx.timeout, params.request_timeout)
    return GitHub(params.repo, token, api_url=api_url, timeout=timeout)


# ---------------------------------------------------------------- ci_green


class CiGreenParams(GitHubParams):
    """Parameters of the ``ci_green`` action."""

    ref: str = Field(
        default="main", description="Branch, tag or commit sha whose latest commit must be green."
    )
    required_checks: list[str] = Field(
        default_factory=list,
        description="Check runs that must exist and have succeeded; empty: every check run "
        "present must have succeeded.",
    )
    required_statuses: list[str] = Field(
        default_factory=list,
        description="Commit status contexts that must exist and be `success`; empty: every "
        "status present must be `success`.",
    )
    workflow: str | None = Field(
        default=None,
        description="Workflow file (e.g. `deploy.yml`) whose latest run on `branch` must "
        "have succeeded.",
    )
    branch: str = Field(default="main", description="Branch of the workflow's runs.")


class CiGreenOutputs(ActionOutputs):
    """Outputs of the ``ci_green`` action."""

    commit: str = Field(
        description="The full sha of the commit CI judged: the release commit, to carry to "
        "`git_tag`'s `commit` and `github_workflow`'s `expect_commit`."
    )
    sha: str = Field(description="The same commit (older name).")
    problems: list[str] = Field(description="What is pending, failed or missing, with links.")
    green: list[str] = Field(description="The checks, statuses and workflow that passed.")


class CiGreenAction(Action[CiGreenParams]):
    """Check that the release commit's required check runs and statuses succeeded on GitHub
    and that the named workflow's latest run on the branch succeeded; list what is pending
    or failed, with links."""

    name = "ci_green"
    changes_world = False
    summary = "Check runs, commit statuses and a workflow's latest run are green on GitHub."
    Params = CiGreenParams
    Outputs = CiGreenOutputs
    idempotent = True

    def describe(self, params: CiGreenParams, ctx: PlanContext) -> str:
        extra = (
            f" and the latest {params.workflow} run on {params.branch}" if params.workflow else ""
        )
        return f"check that CI is green for {params.repo}@{params.ref}{extra}"

    def run(self, params: CiGreenParams, ctx: StepContext) -> Outcome:
        with _client(params, ctx) as gh:
            sha = gh.commit_sha(params.ref)
            ctx.progress(f"{params.repo}@{params.ref} is {sha[:12]}")
            problems: list[str] = []
            green: list[str] = []
            checks = {c["name"]: c for c in gh.check_runs(sha)}
            for name in params.required_checks or sorted(checks):
                check = checks.get(name)
                if check is None:
                    problems.append(f"check {name}: missing")
                elif check["status"] != "completed":
                    problems.append(f"check {name}: {check['status']} {check.get('html_url', '')}")
                elif check.get("conclusion") not in OK_CONCLUSIONS:
                    problems.append(
                        f"check {name}: {check.get('conclusion')} {check.get('html_url', '')}"
                    )
                else:
                    green.append(f"check {name}")
            statuses = {s["context"]: s for s in gh.combined_status(sha)["statuses"]}
            for context in params.required_statuses or sorted(statuses):
                status = statuses.get(context)
                if status is None:
                    problems.append(f"status {context}: missing")
                elif status["state"] != "success":
                    problems.append(
                        f"status {context}: {status['state']} {status.get('target_url') or ''}"
                    )
                else:
                    green.append(f"status {context}")
            if params.workflow:
                runs = gh.workflow_runs(params.workflow, branch=params.branch)
                if not runs:
                    problems.append(f"workflow {params.workflow}: no run on {params.branch}")
                else:
                    latest = runs[0]
                    state = latest.get("conclusion") or latest["status"]
                    if latest.get("conclusion") != "success":
                        problems.append(
                            f"workflow {params.workflow}: latest run {state} {latest['html_url']}"
                        )
                    else:
                        green.append(f"workflow {params.workflow}")
        problems = [p.rstrip() for p in problems]
        outputs: dict[str, Any] = {
            "commit": sha,
            "sha": sha,
            "problems": problems,
            "green": green,
        }
        if problems:
            return Outcome.failure(
                f"CI is not green for {sha[:12]}: {len(problems)} pending or failed",
                detail="\n".join(problems),
                outputs=outputs,
            )
        if not green:
            return Outcome.failure(
                f"nothing to check on {sha[:12]}: no check runs, statuses or workflow",
                outputs=outputs,
                retryable=False,
            )
        return Outcome.success(
            f"CI green for {sha[:12]}: {len(green)} checks",
            detail="\n".join(green),
            outputs=outputs,
        )


# ---------------------------------------------------------------- github_workflow


class GitHubWorkflowParams(GitHubParams):
    """Parameters of the ``github_workflow`` action."""

    workflow: str = Field(min_length=1, description="Workflow file name, e.g. `deploy.yml`.")
    ref: str = Field(default="main", description="Branch or tag the workflow runs on.")
    inputs: dict[str, str] = Field(
        default_factory=dict, description="`workflow_dispatch` inputs, e.g. `{tag: v1.2.0}`."
    )
    marker_input: str | None = Field(
        default=None,
        description="An input the workflow declares (and shows in its `run-name`) to carry a "
        "marker unique to this release and step: the run is then recognised by its title. "
        "Default: none; the run is found by event, ref, the token's user and time.",
    )
    expect_commit: str | None = Field(
        default=None,
        description="The release commit (`{{ steps.tag_release.commit }}`): the run must build "
        "it (its `head_sha`), else the step fails naming both commits, before the build's "
        "outputs are used.",
    )
    poll_interval: Duration = Field(default=5.0, description="Pause between two looks at the run.")
    find_within: Duration = Field(
        default=60.0, description="How long to wait for the dispatched run to appear."
    )
    outputs_artifact: str | None = Field(
        default=None,
        description="Artifact the workflow uploads with its outputs (e.g. the image digests "
        "it built), as a JSON object in `outputs_file`; later steps read them as "
        "`steps.<id>.outputs.<name>`.",
    )
    outputs_file: str = Field(
        default="outputs.json", description="The JSON file inside `outputs_artifact`."
    )


def _marker(ctx: StepContext) -> str:
    digest = hashlib.sha256(f"{ctx.release_id}/{ctx.step_id}".encode()).hexdigest()[:16]
    return f"sc-{digest}"


class GitHubWorkflowOutputs(ActionOutputs):
    """Outputs of the ``github_workflow`` action."""

    run_id: int = Field(description="The run's id.")
    run_url: str = Field(description="The run's page on GitHub.")
    head_sha: str | None = Field(description="The commit the run built.")
    conclusion: str | None = Field(description="`success`, `failure`, `cancelled` ...")
    failed_jobs: list[str] = Field(default_factory=list, description="Jobs that did not pass.")
    outputs: dict[str, Any] = Field(
        default_factory=dict,
        description="With `outputs_artifact`: the JSON object the run uploaded, e.g. "
        "`steps.<id>.outputs.images.api`.",
    )


class GitHubWorkflowAction(Action[GitHubWorkflowParams]):
    """Dispatch a workflow, find the run it started and follow it to the end.

    Fails with the failed jobs' names and the run's link. Outputs ``run_id``, ``run_url``,
    ``head_sha``, ``conclusion`` and, with ``outputs_artifact``, ``outputs``: what the
    workflow wrote to that artifact. Sends only the step's inputs; a dispatch GitHub refuses
    (an undeclared or missing input, no ``workflow_dispatch`` trigger) fails saying how to
    fix it. A dispatch whose answer was lost, a crash or a resume never starts a second run:
    the run already started is found and followed."""

    name = "github_workflow"
    summary = (
        "Start a GitHub Actions workflow and follow its run; crash-safe, never dispatched twice."
    )
    Params = GitHubWorkflowParams
    Outputs = GitHubWorkflowOutputs
    idempotent = True
    finds_earlier_tries = True  # the run an earlier try dispatched: from its recorded start

    def describe(self, params: GitHubWorkflowParams, ctx: PlanContext) -> str:
        inputs = ", ".join(f"{k}={v}" for k, v in params.inputs.items())
        return (
            f"run workflow {params.workflow} of {params.repo} on {params.ref}"
            + (f" with {inputs}" if inputs else "")
            + " and follow it until it completes"
        )

    def run(self, params: GitHubWorkflowParams, ctx: StepContext) -> Outcome:
        deadline = time.monotonic() + ctx.timeout
        marker = _marker(ctx) if params.marker_input else None
        with _client(params, ctx) as gh:
            look = _RunLookup(gh, params, gh.login(), marker)
            first = ctx.first_started()
            run = look.earlier(first - CLOCK_SKEW) if first is not None else None
            if run is not None:
                ctx.progress(f"following run {run['id']} started before: {run['html_url']}")
            else:
                found = self._dispatch(gh, params, look, marker, ctx, deadline)
                if isinstance(found, Outcome):
                    return found
                run = found
                ctx.progress(f"run {run['id']}: {run['html_url']}")
            wrong = _other_commit(run, params.expect_commit)
            if wrong is not None:
                return wrong
            return self._follow(gh, params, run, ctx, deadline)

    def _dispatch(
        self,
        gh: GitHub,
        params: GitHubWorkflowParams,
        look: _RunLookup,
        marker: str | None,
        ctx: StepContext,
        deadline: float,
    ) -> dict[str, Any] | Outcome:
        """Dispatch once and find the run it started (or say why not)."""
        inputs = dict(params.inputs)
        if marker and params.marker_input:
            inputs[params.marker_input] = marker
        there = look.ids()
        dispatched_at = time.time()
        uncertain: str | None = None
        try:
            gh.dispatch(params.workflow, params.ref, inputs)
            ctx.progress(f"dispatched {params.workflow} on {params.ref}")
        except GitHubUncertain as exc:
            uncertain = str(exc)
            ctx.progress(f"the dispatch may have reached GitHub ({exc}): looking for its run")
        except GitHubError as exc:
            if exc.status in (404, 422):
                return Outcome.failure(
                    f"GitHub refused to start {params.workflow} on {params.ref}: {exc}",
                    detail=dispatch_fix(str(exc), params),
                    retryable=False,
                )
            raise
        find_until = time.monotonic() + params.find_within
        while True:
            run = look.new(there, dispatched_at - CLOCK_SKEW)
            if run is not None:
                return run
            if time.monotonic() > min(find_until, deadline):
                if uncertain:
                    return Outcome.failure(
                        f"the dispatch of {params.workflow} may not have reached GitHub and no "
                        f"run appeared within {params.find_within:g}s",
                        detail=f"{uncertain}\nLook at https://github.com/{params.repo}/actions/"
                        f"workflows/{params.workflow}; resuming the release looks for the run "
                        "again before it dispatches.",
                        retryable=False,
                    )
                return Outcome.failure(
                    f"{params.workflow} was dispatched but its run did not appear "
                    f"within {params.find_within:g}s",
                    retryable=False,
                )
            time.sleep(min(params.poll_interval, 1.0))

    def _follow(
        self,
        gh: GitHub,
        params: GitHubWorkflowParams,
        run: dict[str, Any],
        ctx: StepContext,
        deadline: float,
    ) -> Outcome:
        last = ""
        while True:
            run = gh.run(int(run["id"]))
            if run["status"] != last:
                last = run["status"]
                ctx.progress(f"run {run['id']}: {last}")
            if run["status"] == "completed":
                break
            if time.monotonic() + params.poll_interval > deadline:
                return Outcome.failure(
                    f"run {run['id']} still {run['status']} when the step ran out of time: "
                    f"{run['html_url']}",
                    outputs=_outputs(run),
                )
            time.sleep(params.poll_interval)
        if run["conclusion"] == "success":
            outputs = _outputs(run)
            if params.outputs_artifact:
                outputs["outputs"] = workflow_outputs(
                    gh, run, params.outputs_artifact, params.outputs_file
                )
            return Outcome.success(
                f"{params.workflow} run {run['id']} succeeded: {run['html_url']}",
                outputs=outputs,
            )
        jobs = gh.jobs(int(run["id"]))
        failed = [j["name"] for j in jobs if j.get("conclusion") not in OK_CONCLUSIONS]
        return Outcome.failure(
            f"{params.workflow} run {run['id']} {run['conclusion']}"
            + (f" (failed jobs: {', '.join(failed)})" if failed else "")
            + f": {run['html_url']}",
            detail="\n".join(f"{j['name']}: {j.get('conclusion')} {j['html_url']}" for j in jobs),
            outputs={**_outputs(run), "failed_jobs": failed},
            retryable=False,
        )


#: how far GitHub's clock (a run's created_at) may be from this machine's
CLOCK_SKEW = 60.0


class _RunLookup:
    """Finds the runs of one workflow that a dispatch of this step starts: event
    ``workflow_dispatch``, on the step's ref, by the token's user (when GitHub says who
    that is) and, with a marker, showing it in the run's title."""

    def __init__(
        self, gh: GitHub, params: GitHubWorkflowParams, actor: str | None, marker: str | None
    ) -> None:
        self.gh, self.params, self.actor, self.marker = gh, params, actor, marker

    def runs(self, since: float | None = None) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"event": "workflow_dispatch", "branch": self.params.ref}
        if self.actor:
            filters["actor"] = self.actor
        if since is not None:
            filters["created"] = ">=" + _iso(since)
        return [
            run
            for run in self.gh.workflow_runs(self.params.workflow, **filters)
            if run.get("event") == "workflow_dispatch"
            and run.get("head_branch") == self.params.ref
            and (not self.actor or _actor(run) == self.actor)
            and (since is None or _epoch(run["created_at"]) >= since)
            and (self.marker is None or self.marker in str(run.get("display_title", "")))
        ]

    def ids(self) -> set[int]:
        """The runs there are before a dispatch."""
        return {int(run["id"]) for run in self.runs()}

    def new(self, before: set[int], since: float) -> dict[str, Any] | None:
        """The oldest run that was not there before the dispatch."""
        fresh = [run for run in self.runs(since) if int(run["id"]) not in before]
        return min(fresh, key=lambda run: int(run["id"])) if fresh else None

    def earlier(self, since: float) -> dict[str, Any] | None:
        """The newest run started since the step first started that has not failed: the
        run an interrupted try dispatched (a failed one is not taken again)."""
        for run in self.runs(since):
            if run.get("status") != "completed" or run.get("conclusion") in OK_CONCLUSIONS:
                return run
        return None


def _actor(run: dict[str, Any]) -> str | None:
    actor = run.get("triggering_actor") or run.get("actor") or {}
    return actor.get("login") if isinstance(actor, dict) else None


def dispatch_fix(message: str, params: GitHubWorkflowParams) -> str:
    """How to fix a dispatch GitHub refused, from its message."""
    path = f".github/workflows/{params.workflow}"
    if "Unexpected inputs" in message:
        return (
            f"Send only the inputs {path} declares at {params.ref} (under "
            "on.workflow_dispatch.inputs): remove the others from the step's `inputs`, or "
            "declare them in the workflow."
        )
    if "Required input" in message:
        return f"{path} requires that input at {params.ref}: add it to the step's `inputs`."
    if "workflow_dispatch" in message:
        return (
            f"{path} at {params.ref} cannot be started by hand: add `workflow_dispatch:` to "
            "its `on:` triggers (on the ref the step dispatches), or dispatch another workflow."
        )
    if "not in the list of allowed values" in message:
        return f"Give that input one of the options {path} lists for it."
    if "No ref found" in message:
        return f"The ref {params.ref!r} does not exist on GitHub: push it first (git_tag does)."
    return f"Check {path} at {params.ref} and the step's `inputs`."


def _other_commit(run: dict[str, Any], expected: str | None) -> Outcome | None:
    """A failure when the run builds another commit than the release commit, else None."""
    built = str(run.get("head_sha") or "")
    if not expected or (built and (built.startswith(expected) or expected.startswith(built))):
        return None
    return Outcome.failure(
        f"run {run['id']} builds {built[:12] or 'an unknown commit'}, not the release commit "
        f"{expected[:12]}: {run['html_url']}",
        detail="The workflow ran on a ref that points at another commit than the one CI "
        "judged and the release tagged; its build is not this release's.",
        outputs=_outputs(run),
        retryable=False,
    )


def workflow_outputs(gh: GitHub, run: dict[str, Any], artifact: str, file: str) -> dict[str, Any]:
    """The JSON object in ``file`` of the run's artifact ``artifact`` (raises ActionError
    saying what is missing)."""
    found = [a for a in gh.artifacts(int(run["id"]), name=artifact) if a["name"] == artifact]
    if not found:
        raise ActionError(f"run {run['id']} uploaded no artifact named {artifact!r}")
    if found[0].get("expired"):
        raise ActionError(f"artifact {artifact!r} of run {run['id']} has expired")
    try:
        with zipfile.ZipFile(io.BytesIO(gh.download_artifact(int(found[0]["id"])))) as archive:
            data = json.loads(archive.read(file))
    except KeyError as exc:
        raise ActionError(f"artifact {artifact!r} of run {run['id']} has no {file}") from exc
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ActionError(f"{file} in artifact {artifact!r} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ActionError(f"{file} in artifact {artifact!r} must hold a JSON object")
    return data


def _outputs(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run["id"],
        "run_url": run["html_url"],
        "head_sha": run.get("head_sha"),
        "conclusion": run.get("conclusion"),
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
