"""The ``changelog`` action: what changed between the previous release tag and this one,
and the feature owners' sign-off on it.

Commits are grouped by conventional-commit type (``feat``, ``fix``, ...) with their authors
and pull-request numbers; new migration files are listed with their phase (``-- phase:
expand`` in the file, or ``expand``/``contract`` in its name). The feature owners'
sign-off on it is the ``changelog_sign_off`` action (each owner confirms the part that
touches their surfaces); the ``text`` output is the whole changelog, e.g. for the comms.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
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
from shipcaptain.integrations.git import Git

CONVENTIONAL = re.compile(
    r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?:\s*(?P<text>.+)$"
)
PR_NUMBER = re.compile(r"\(#(\d+)\)|Merge pull request #(\d+)")
PHASE_LINE = re.compile(r"^\s*--\s*phase:\s*(\w+)", re.MULTILINE | re.IGNORECASE)
TYPE_TITLES = {
    "feat": "Features",
    "fix": "Fixes",
    "perf": "Performance",
    "refactor": "Refactoring",
    "docs": "Documentation",
    "chore": "Chores",
}


class ChangelogParams(ActionParams):
    """Parameters of the ``changelog`` action."""

    tag: str = Field(
        min_length=1,
        description="This release's tag, e.g. `v{{ version }}`, or its commit before it is "
        "tagged (`HEAD`).",
    )
    title: str | None = Field(default=None, description="Heading of the changelog; default: `tag`.")
    previous_tag: str | None = Field(
        default=None,
        description="The previous release's tag; default (or empty): the newest `v*` tag "
        "before `tag`.",
    )
    repo: str = Field(default=".", description="The checkout, relative to the work directory.")
    migrations_dir: str | None = Field(
        default=None, description="Directory of migration files, e.g. `supabase/migrations`."
    )


def _entry(commit: dict[str, str]) -> tuple[str, str]:
    subject = commit["subject"]
    match = CONVENTIONAL.match(subject)
    kind = match["type"] if match else "other"
    text = match["text"] if match else subject
    if match and match["scope"]:
        text = f"**{match['scope']}**: {text}"
    if match and match["bang"]:
        text = f"BREAKING: {text}"
    prs = [a or b for a, b in PR_NUMBER.findall(subject + "\n" + commit["body"])]
    pr = f" (#{prs[0]})" if prs else ""
    text = PR_NUMBER.sub("", text).strip()
    return kind, f"- {text}{pr}, {commit['author']} `{commit['sha'][:7]}`"


def collect_changes(
    git: Git, previous: str, tag: str, migrations_dir: str | None, *, files: bool = False
) -> dict[str, Any]:
    """The commits of ``previous..tag`` (each with its conventional-commit ``kind`` and
    ``scope``, its changelog ``line`` and, with ``files``, the paths it changed) and the
    migration files added, with their ``phase`` and ``sql``. JSON, so it can be recorded."""
    commits = []
    for commit in git.commits(f"{previous}..{tag}"):
        kind, line = _entry(commit)
        match = CONVENTIONAL.match(commit["subject"])
        scopes = [s.strip() for s in (match["scope"] or "").split(",")] if match else []
        entry: dict[str, Any] = {
            "sha": commit["sha"],
            "kind": kind,
            "scopes": [s for s in scopes if s],
            "line": line,
        }
        if files:
            changed = git.out("diff-tree", "--no-commit-id", "--name-only", "-r", commit["sha"])
            entry["files"] = [f for f in changed.splitlines() if f]
        commits.append(entry)
    migrations: list[dict[str, str]] = []
    if migrations_dir:
        added = git.out(
            "diff", "--name-only", "--diff-filter=A", previous, tag, "--", migrations_dir
        )
        for path in sorted(p for p in added.splitlines() if p):
            text = git.run("show", f"{tag}:{path}").stdout
            found = PHASE_LINE.search(text)
            name = Path(path).name.lower()
            phase = (
                found[1].lower()
                if found
                else "contract"
                if "contract" in name
                else "expand"
                if "expand" in name
                else "unknown"
            )
            migrations.append({"path": path, "phase": phase, "sql": text})
    return {"commits": commits, "migrations": migrations}


def render_changelog(
    heading: str, commits: list[dict[str, Any]], migrations: list[dict[str, Any]] | None
) -> str:
    """The changelog as Markdown: ``commits`` grouped by kind, then ``migrations`` (None:
    no migrations directory, so no such section)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for commit in commits:
        groups[commit["kind"]].append(commit["line"])
    order = [*TYPE_TITLES, *sorted(k for k in groups if k not in TYPE_TITLES)]
    lines = [f"## {heading}", ""]
    for kind in order:
        if groups.get(kind):
            lines += [f"### {TYPE_TITLES.get(kind, kind.capitalize())}", *groups[kind], ""]
    if migrations is not None:
        lines.append("### Migrations")
        lines += [f"- {m['path']} ({m['phase']})" for m in migrations] or ["- none"]
    return "\n".join(lines).strip() + "\n"


def build_changelog(
    git: Git, previous: str, tag: str, migrations_dir: str | None, *, title: str | None = None
) -> dict[str, Any]:
    changes = collect_changes(git, previous, tag, migrations_dir)
    migrations = [{"path": m["path"], "phase": m["phase"]} for m in changes["migrations"]]
    text = render_changelog(
        f"{title or tag} (since {previous})",
        changes["commits"],
        migrations if migrations_dir else None,
    )
    changed = git.out("diff", "--name-only", previous, tag)
    return {
        "text": text,
        "commits": len(changes["commits"]),
        "migrations": migrations,
        "previous_tag": previous,
        "paths": sorted(p for p in changed.splitlines() if p),
    }


def previous_tag(git: Git, params: ChangelogParams) -> str | Outcome:
    """The previous release's tag for ``params``, or the failure to report."""
    if git.commit_of(params.tag) is None:
        return Outcome.failure(f"{params.tag} not found in {git.repo}", retryable=False)
    if params.previous_tag:
        return params.previous_tag
    found = git.run(
        "describe", "--tags", "--abbrev=0", "--match", "v*", f"{params.tag}^", check=False
    )
    if found.returncode != 0:
        return Outcome.failure(
            f"no release tag before {params.tag}; give previous_tag", retryable=False
        )
    return found.stdout.strip()


class ChangelogOutputs(ActionOutputs):
    """Outputs of the ``changelog`` action."""

    text: str = Field(description="The changelog as Markdown.")
    commits: int = Field(description="Number of commits since the previous release tag.")
    migrations: list[dict[str, Any]] = Field(description="New migrations: `path` and `phase`.")
    previous_tag: str = Field(description="The previous release's tag.")
    paths: list[str] = Field(
        default_factory=list,
        description="Files changed since the previous tag, e.g. for a step's `when`: "
        "`'policies/' in steps.changelog.paths | join(' ')`.",
    )


class ChangelogAction(Action[ChangelogParams]):
    """Build the changelog between the previous release tag and this one (grouped by
    conventional-commit type, with authors and PR numbers) and the list of new migrations
    with their phase. Outputs: ``text`` (Markdown), ``commits``, ``migrations``,
    ``previous_tag``. The feature owners sign it off with ``changelog_sign_off``."""

    name = "changelog"
    changes_world = False
    summary = "Changelog and new migrations since the previous release tag."
    Params = ChangelogParams
    Outputs = ChangelogOutputs
    idempotent = True

    def describe(self, params: ChangelogParams, ctx: PlanContext) -> str:
        since = params.previous_tag or "the previous release tag"
        return f"list the commits and new migrations of {params.tag} since {since}"

    def run(self, params: ChangelogParams, ctx: StepContext) -> Outcome:
        git = Git(Path(ctx.workdir) / params.repo, timeout=min(ctx.timeout, 120.0))
        previous = previous_tag(git, params)
        if isinstance(previous, Outcome):
            return previous
        log = build_changelog(git, previous, params.tag, params.migrations_dir, title=params.title)
        ctx.progress(f"{log['commits']} commits and {len(log['migrations'])} new migrations")
        return Outcome.success(
            f"{params.title or params.tag}: {log['commits']} commits and "
            f"{len(log['migrations'])} new migrations since {previous}",
            detail=log["text"],
            outputs=log,
        )
