"""The ``git_tag`` action: an annotated tag ``v<version>`` on the release commit, pushed.

Idempotent: a tag that already exists (here or on the remote) on the same commit is
"already done"; a tag of that name on another commit stops the release and shows both
commits, because moving a release tag silently would make two releases look like one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.integrations.git import Git


class GitTagParams(ActionParams):
    """Parameters of the ``git_tag`` action."""

    tag: str = Field(min_length=1, description="Tag name, e.g. `v{{ version }}`.")
    commit: str = Field(
        default="HEAD", description="The release commit (sha, branch or any git revision)."
    )
    message: str | None = Field(default=None, description="Tag message; default `Release <tag>`.")
    remote: str = Field(default="origin", description="Remote to push the tag to.")
    push: bool = Field(default=True, description="Push the tag to the remote.")
    repo: str = Field(
        default=".", description="The checkout, relative to the release's work directory."
    )


class GitTagOutputs(ActionOutputs):
    """Outputs of the ``git_tag`` action."""

    tag: str = Field(description="The tag.")
    commit: str = Field(description="The full sha of the tagged release commit.")
    tagged_commit: str | None = Field(
        default=None, description="When the tag exists on another commit: that commit."
    )


class GitTagAction(Action[GitTagParams]):
    """Create an annotated release tag on the release commit and push it to the remote."""

    name = "git_tag"
    summary = "Create and push an annotated release tag; already done if it is on the same commit."
    Params = GitTagParams
    Outputs = GitTagOutputs
    idempotent = True

    def describe(self, params: GitTagParams, ctx: PlanContext) -> str:
        where = f" and push it to {params.remote}" if params.push else ""
        return f"tag {params.commit} as {params.tag} (annotated){where}"

    def _git(self, params: GitTagParams, ctx: StepContext) -> Git:
        return Git(Path(ctx.workdir) / params.repo, timeout=min(ctx.timeout, 120.0))

    def _check(self, params: GitTagParams, git: Git) -> tuple[str, Outcome | None]:
        """The release commit, and an Outcome if the tag exists already (done or clash)."""
        commit = git.commit_of(params.commit)
        if commit is None:
            return "", Outcome.failure(
                f"release commit {params.commit!r} not found in {git.repo}", retryable=False
            )
        local = git.commit_of(f"refs/tags/{params.tag}")
        remote = git.remote_tag_commit(params.remote, params.tag) if params.push else None
        for where, found in (("here", local), (f"on {params.remote}", remote)):
            if found is not None and found != commit:
                return commit, Outcome.failure(
                    f"tag {params.tag} already exists {where} on another commit: "
                    f"{found[:12]} instead of the release commit {commit[:12]}",
                    detail=f"tag {params.tag}: {git.describe_commit(found)}\n"
                    f"release commit: {git.describe_commit(commit)}",
                    outputs={"tag": params.tag, "commit": commit, "tagged_commit": found},
                    retryable=False,
                )
        if local == commit and (not params.push or remote == commit):
            return commit, Outcome.success(
                f"tag {params.tag} already on {commit[:12]}",
                already_done=True,
                outputs={"tag": params.tag, "commit": commit},
            )
        return commit, None

    def already_done(self, params: GitTagParams, ctx: StepContext) -> Outcome | None:
        _, outcome = self._check(params, self._git(params, ctx))
        return outcome if outcome is not None and outcome.already_done else None

    def run(self, params: GitTagParams, ctx: StepContext) -> Outcome:
        git = self._git(params, ctx)
        commit, outcome = self._check(params, git)
        if outcome is not None:
            return outcome
        if git.commit_of(f"refs/tags/{params.tag}") is None:
            ctx.progress(f"git tag -a {params.tag} {commit[:12]}")
            git.run(
                "tag", "-a", params.tag, "-m", params.message or f"Release {params.tag}", commit
            )
        if params.push:
            ctx.progress(f"git push {params.remote} refs/tags/{params.tag}")
            git.run("push", params.remote, f"refs/tags/{params.tag}")
        where = f" and pushed to {params.remote}" if params.push else ""
        return Outcome.success(
            f"tagged {commit[:12]} as {params.tag}{where}",
            outputs={"tag": params.tag, "commit": commit},
        )
