"""The ``changelog_sign_off`` action: each feature owner confirms the part of the changelog
that touches their surfaces.

What a change touches:

* a commit touches surface ``S`` when its conventional-commit scope is ``S``
  (``feat(canvas): ...``, or one of ``feat(canvas,billing): ...``), or when a file it
  changed matches one of ``surfaces.S`` (fnmatch patterns, where ``*`` also matches ``/``:
  ``src/canvas/**``);
* a new migration touches ``S`` when its path matches ``surfaces.S`` or its SQL names a
  table listed in ``tables.S`` (read with pglast, as ``migration_sign_off`` does); the
  commit that adds it touches ``S`` too.

Who owns a surface is the team file's business: the people holding the ``owners`` role
(``feature_owner``) in the release's environment, with the ``surfaces`` the team file
gives each of them. The step opens one gate in parts: a part per owner whose surfaces are
touched, showing only their commits and migrations, and a part for everything that touches
no owned surface (no scope or path that maps to a surface, or a surface nobody owns), for
the ``unassigned_to`` role (``release_captain``). Each part needs its own confirmation: the
step succeeds once every owner (and one of the role) has confirmed, and fails at the first
rejection, naming who and why. When nothing touches an owned surface, the role confirms
the whole changelog; when nothing changed at all, the step succeeds at once.

The split (commits, migrations, owners) is recorded once, so the engine's replay after a
crash asks the same people about the same parts.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from pydantic import Field

from shipcaptain.actions.base import (
    ActionOutputs,
    ActionParams,
    DurableAction,
    DurableContext,
    GatePart,
    GateRequest,
    Outcome,
    PlanContext,
)
from shipcaptain.actions.changelog import (
    ChangelogParams,
    collect_changes,
    previous_tag,
    render_changelog,
)
from shipcaptain.actions.gates import _detail, _names, _users
from shipcaptain.integrations.git import Git
from shipcaptain.runbook.durations import Duration, format_duration


class SurfaceOwnersParams(ActionParams):
    """Who signs off a gate in parts by surface: the owners of each surface, and a role for
    what no one owns (shared by the changelog and smoke sign-offs)."""

    owners: str = Field(
        default="feature_owner",
        description="Role whose members own surfaces (the team file's `surfaces`).",
    )
    unassigned_to: str = Field(
        default="release_captain",
        description="Role that confirms what touches no owned surface.",
    )
    timeout: Duration = Field(default=7200.0, description="How long to wait for everyone.")


def await_parts(
    ctx: DurableContext,
    parts: list[dict[str, Any]],
    prompt: str,
    timeout: float,
    evidence: dict[str, Any],
    outputs: dict[str, Any],
    *,
    output: str = "confirmed_by",
) -> Outcome:
    """Open one gate in ``parts`` (a confirmation per part, by its own people or role) and
    turn its result into the step's outcome; ``output`` names who confirmed."""
    result = ctx.await_gate(
        GateRequest(
            # a confirmation: the captain who started the release may confirm a part
            kind="checklist",
            prompt=prompt,
            roles=sorted({r for p in parts for r in p["roles"]}),
            people=list(dict.fromkeys(name for p in parts for name in p["people"])),
            quorum=len(parts),
            deadline_seconds=timeout,
            evidence={**evidence, "parts": parts},
        )
    )
    outputs[output] = _users(result, "approve")
    detail = _detail(result)
    if result.approved:
        return Outcome.success(
            "confirmed by " + _names(result, "approve"), outputs=outputs, detail=detail
        )
    rejected = [d for d in result.decisions if d.decision == "reject"]
    if rejected:
        summary = "not confirmed: rejected by " + "; ".join(
            f"{d.user} ({', '.join(_theirs(parts, d.user, d.role)) or d.role})"
            + (f": {d.comment!r}" if d.comment else " (no comment)")
            for d in rejected
        )
    else:
        done = [d for d in result.decisions if d.decision == "approve"]
        waiting = [
            p["title"]
            for p in parts
            if not any(p["title"] in _theirs(parts, d.user, d.role) for d in done)
        ]
        summary = (
            f"not confirmed within {format_duration(timeout)}; "
            f"still waiting for {'; '.join(waiting)}"
        )
    return Outcome.failure(summary, outputs=outputs, detail=detail, retryable=False)


class ChangelogSignOffParams(ChangelogParams, SurfaceOwnersParams):
    """Parameters of the ``changelog_sign_off`` action."""

    surfaces: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Surface -> path patterns (fnmatch; `*` matches `/` too), e.g. "
        '`canvas: ["src/canvas/**", "migrations/*canvas*"]`. A commit touches a surface '
        "when it changes a matching file or its conventional-commit scope is the surface's "
        "name.",
    )
    tables: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Surface -> tables (or schema.table): a new migration naming one touches "
        "the surface.",
    )
    item: str = Field(
        default="Confirm the changes to the surfaces you own",
        description="The question put to each owner.",
    )


def _tables_of(sql: str) -> set[str]:
    import pglast

    from shipcaptain.actions.migration_sign_off import _relations

    found: set[str] = set()
    try:
        _relations(pglast.parse_sql(sql), found)
    except pglast.parser.ParseError:
        return set()
    return found


def touched_surfaces(
    item: dict[str, Any], params: ChangelogSignOffParams, owned: set[str]
) -> set[str]:
    """The surfaces a commit or a migration (as collected) touches."""
    known = owned | set(params.surfaces)
    found = {s for s in item.get("scopes", ()) if s in known}
    paths = [item["path"]] if "path" in item else item.get("files", [])
    for surface, patterns in params.surfaces.items():
        if any(fnmatch.fnmatch(p, pat) for p in paths for pat in patterns):
            found.add(surface)
    if "sql" in item and params.tables:
        tables = _tables_of(item["sql"])
        found |= {s for s, names in params.tables.items() if tables & set(names)}
    return found


def split_changelog(
    changes: dict[str, Any],
    owners: dict[str, list[str]],
    params: ChangelogSignOffParams,
    heading: str,
) -> list[dict[str, Any]]:
    """The gate's parts: one per owner whose surfaces are touched, then the unassigned rest
    (or the whole changelog, when nothing touches an owned surface)."""
    owned = {s for surfaces in owners.values() for s in surfaces}
    with_migrations = params.migrations_dir is not None
    items = [("commits", c) for c in changes["commits"]]
    items += [("migrations", m) for m in changes["migrations"]]
    touched = [(kind, item, touched_surfaces(item, params, owned)) for kind, item in items]
    # a commit that adds a migration touches what the migration touches
    by_path = {item["path"]: hit for kind, item, hit in touched if kind == "migrations"}
    for kind, item, found in touched:
        for path in item.get("files", ()) if kind == "commits" else ():
            found.update(by_path.get(path, set()))
    parts = []
    assigned: set[int] = set()
    for person, surfaces in owners.items():
        mine = [
            (i, kind, item) for i, (kind, item, hit) in enumerate(touched) if hit & set(surfaces)
        ]
        if not mine:
            continue
        assigned |= {i for i, _, _ in mine}
        hit = sorted({s for i, _, _ in mine for s in touched[i][2] & set(surfaces)})
        mine_items = [(kind, item) for _, kind, item in mine]
        parts.append(_part(person, [], hit, mine_items, heading, with_migrations))
    rest = [(kind, item) for i, (kind, item, _) in enumerate(touched) if i not in assigned]
    if rest:
        label = "unassigned (no owned surface)" if parts else "everything (no owned surface)"
        parts.append(_part(None, [params.unassigned_to], [label], rest, heading, with_migrations))
    return parts


def _part(
    person: str | None,
    roles: list[str],
    surfaces: list[str],
    items: list[tuple[str, dict[str, Any]]],
    heading: str,
    with_migrations: bool,
) -> dict[str, Any]:
    commits = [item for kind, item in items if kind == "commits"]
    migrations = [item for kind, item in items if kind == "migrations"]
    text = render_changelog(
        f"{heading}: {', '.join(surfaces)}", commits, migrations if with_migrations else None
    )
    who = person or f"role {roles[0]}"
    return GatePart(
        title=f"{who}: {', '.join(surfaces)}",
        text=text,
        people=[person] if person else [],
        roles=roles,
    ).as_evidence()


def _theirs(parts: list[dict[str, Any]], user: str, role: str | None) -> list[str]:
    """The titles of the parts ``user`` (deciding as ``role``) answered for."""
    return [p["title"] for p in parts if user in p["people"] or role in p["roles"]]


class ChangelogSignOffOutputs(ActionOutputs):
    """Outputs of the ``changelog_sign_off`` action."""

    text: str = Field(description="The changelog that was signed off.")
    parts: dict[str, list[str]] = Field(description="Each part's title and who confirms it.")
    confirmed_by: list[str] = Field(default_factory=list, description="Who confirmed.")


class ChangelogSignOffAction(DurableAction[ChangelogSignOffParams]):
    """Build the changelog (as ``changelog`` does) and have each feature owner confirm the
    part touching their surfaces; what touches no owned surface goes to ``unassigned_to``.
    One gate, one part per person: everyone must confirm, one rejection ends it. Outputs:
    ``confirmed_by``, ``parts`` (title -> people or roles), ``text`` (the whole changelog)."""

    name = "changelog_sign_off"
    changes_world = False
    waits_for_people = True
    role_params = ("owners", "unassigned_to")
    summary = "Each feature owner confirms the part of the changelog touching their surfaces."
    Params = ChangelogSignOffParams
    Outputs = ChangelogSignOffOutputs

    def describe(self, params: ChangelogSignOffParams, ctx: PlanContext) -> str:
        since = params.previous_tag or "the previous release tag"
        return (
            f"ask each {params.owners} whose surfaces the changes of {params.tag} since "
            f"{since} touch to confirm their part; the rest goes to {params.unassigned_to}"
        )

    def run_durable(self, params: ChangelogSignOffParams, ctx: DurableContext) -> Outcome:
        split = ctx.record("changelog_split", lambda: self._split(params, ctx))
        if "failure" in split:
            return Outcome.failure(split["failure"], retryable=False)
        parts: list[dict[str, Any]] = split["parts"]
        outputs: dict[str, Any] = {
            "text": split["text"],
            "parts": {p["title"]: p["people"] or [f"role {r}" for r in p["roles"]] for p in parts},
        }
        if not parts:
            return Outcome.success("nothing changed: nothing to sign off", outputs=outputs)
        ctx.progress(f"{len(parts)} part(s) to confirm: " + "; ".join(p["title"] for p in parts))
        return await_parts(
            ctx, parts, params.item, params.timeout, {"changelog": split["heading"]}, outputs
        )

    def _split(self, params: ChangelogSignOffParams, ctx: DurableContext) -> dict[str, Any]:
        git = Git(Path(ctx.workdir) / params.repo, timeout=120.0)
        previous = previous_tag(git, params)
        if isinstance(previous, Outcome):
            return {"failure": previous.summary}
        changes = collect_changes(git, previous, params.tag, params.migrations_dir, files=True)
        members = sorted(ctx.members(params.owners), key=lambda m: m.name)
        owners = {m.name: list(m.surfaces) for m in members if m.surfaces}
        heading = f"{params.title or params.tag} (since {previous})"
        migrations = [{"path": m["path"], "phase": m["phase"]} for m in changes["migrations"]]
        text = render_changelog(
            heading, changes["commits"], migrations if params.migrations_dir else None
        )
        parts = split_changelog(changes, owners, params, heading)
        return {"heading": heading, "text": text, "parts": parts}
