"""The ``git_tag`` action: an annotated tag ``v<version>`` on the release commit, pushed.

One commit per release: ``commit`` names the commit CI judged (``{{ steps.ci_green.commit }}``),
and a checkout whose ``HEAD`` is another commit (an unpushed local commit, a stale pull) is
refused with both commits named, since tagging it would ship a commit CI never judged. With
``tag_remote_commit: true`` the commit is fetched from the remote and tagged there, whatever
the checkout holds.

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
        default="HEAD",
        description="The release commit: the commit CI judged, "
        "`{{ steps.ci_green.commit }}` (any git revision; `HEAD` only without CI).",
    )
    tag_remote_commit: bool = Field(
        default=False,
        description="Tag `commit` as it is on the remote (fetched if the checkout lacks it): "
        "the checkout's `HEAD` is not looked at. Default: a checkout whose `HEAD` is not "
        "`commit` is refused, both commits named.",
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
    checkout: str | None = Field(
        default=None, description="When the checkout is refused: the commit its HEAD is."
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

    def _release_commit(self, params: GitTagParams, git: Git) -> str | Outcome:
        """The release commit's sha, or why it cannot be tagged from this checkout."""
        commit = git.commit_of(params.commit)
        if commit is None and params.tag_remote_commit:
            git.run("fetch", "-q", params.remote, params.commit, check=False)
            commit = git.commit_of(params.commit)
        head = git.commit_of("HEAD")
        if commit is None:
            where = f" (HEAD is {git.describe_commit(head)})" if head else ""
            return Outcome.failure(
                f"release commit {params.commit!r} not found in {git.repo}{where}: pull it, "
                f"or set tag_remote_commit: true to fetch it from {params.remote}",
                retryable=False,
            )
        if params.tag_remote_commit or params.commit == "HEAD" or head == commit:
            return commit
        assert head is not None
        ahead = git.run("rev-list", "--count", f"{commit}..{head}", check=False).stdout.strip()
        return Outcome.failure(
            f"the checkout is not the release commit: HEAD is {head[:12]}, the release commit "
            f"(the one CI judged) is {commit[:12]}",
            detail=f"checkout HEAD: {git.describe_commit(head)}\n"
            f"release commit: {git.describe_commit(commit)}\n"
            + (f"the checkout has {ahead} commit(s) CI never judged\n" if ahead != "0" else "")
            + f"Push them and start a new release, check out {commit[:12]}, or set "
            "tag_remote_commit: true to tag the judged commit as it is on "
            f"{params.remote}.",
            outputs={"commit": commit, "checkout": head},
            retryable=False,
        )

    def _check(self, params: GitTagParams, git: Git) -> tuple[str, Outcome | None]:
        """The release commit, and an Outcome if the tag exists already (done or clash) or
        the checkout is not the release commit."""
        release = self._release_commit(params, git)
        if isinstance(release, Outcome):
            return "", release
        commit = release
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
