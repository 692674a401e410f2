"""The demo's team: applied from ``team.yaml`` the way an admin would, with a token for
each person (the demo's people act through their tokens, like everyone else)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from shipcaptain import identity
from shipcaptain.errors import AuthenticationFailed, PermissionDenied
from shipcaptain.records import Person
from shipcaptain.store import Store
from shipcaptain.team import allow_runbook, apply_team, load_team_file, runbook_rule

#: demo tokens live this long: enough for a demo, useless afterwards
TOKEN_LIFETIME_S = 3600.0


def _saved_admin(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _an_admin(store: Store, tokens: list[str | None]) -> Person | None:
    """The admin the first of ``tokens`` that authenticates one belongs to."""
    for token in tokens:
        if not token:
            continue
        try:
            person = identity.authenticate(store, token)
        except AuthenticationFailed:
            continue
        if person.admin:
            return person
    return None


def set_up_team(
    store: Store,
    team_file: Path,
    data_dir: Path,
    given_token: str | None = None,
    *,
    allow: Sequence[tuple[str, Path]] = (),
) -> dict[str, str]:
    """Apply the team file, allow the runbooks ``allow`` names ((environment, file): that
    content, by its digest) and make a token per person; name -> token.

    The first time (no admin holds a live token) the admin's token is the bootstrap one;
    it is kept in ``data_dir/demo-admin-token`` (mode 0600) so a later demo on the same
    state database acts as that admin instead of bootstrapping again. On a database whose
    team is someone else's, the demo acts as the admin whose token it was given.
    """
    team = load_team_file(team_file)
    admin_file = data_dir / "demo-admin-token"
    admin: Person | None = None
    if not identity.can_bootstrap(store):
        admin = _an_admin(store, [_saved_admin(admin_file), given_token, identity.saved_token()])
        if admin is None:
            raise PermissionDenied(
                "this state database already has a team whose admins hold live tokens: run "
                "the demo as one of them (SHIPCAPTAIN_TOKEN or shipcaptain login), or give it "
                "a fresh --data-dir"
            )
    if admin is None:
        first = team.admins[0]
        apply_team(store, team, by=None)
        secret, _ = identity.create_token(
            store, first, expires_in=TOKEN_LIFETIME_S, label="demo admin"
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(admin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret + "\n")
        admin = identity.authenticate(store, secret)
    else:
        apply_team(store, team, by=admin)
    for environment, runbook in allow:
        rule = runbook_rule(environment, str(runbook), note="the demo's runbook")
        allow_runbook(store, rule, by=admin)
        click.echo(f"allow-list: {admin.name} allowed {runbook.name} in {environment}")
    tokens: dict[str, str] = {}
    for person in team.people:
        tokens[person.name], _ = identity.create_token(
            store, person.name, expires_in=TOKEN_LIFETIME_S, label="demo", by=admin
        )
    click.echo(
        f"team: {', '.join(p.name for p in team.people)} from {team_file.name} "
        f"(admin {admin.name}); each got a token valid for {TOKEN_LIFETIME_S / 3600:.0f}h\n"
    )
    return tokens
