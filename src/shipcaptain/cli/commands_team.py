"""Commands for people and proof: team apply|show, token create|list|revoke, login, and
audit verify|export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shipcaptain.cli.common import Obj, handle_errors, json_option

if TYPE_CHECKING:
    from shipcaptain.contract import Service
    from shipcaptain.records import AuditCheck

BOOTSTRAP_HELP = (
    "First-time setup through direct database access: allowed only while no admin holds a "
    "live token; recorded in the audit log with your OS user and host."
)


def _bootstrap(obj: Obj, bootstrap: bool) -> Service | None:
    """For a --bootstrap call, the client contract as no one yet (checked by the callee;
    refused through a server at once)."""
    return obj.bootstrap() if bootstrap else None


# ---- team ----------------------------------------------------------------------------------


@click.group()
def team() -> None:
    """The team: people, their roles per environment, and the permissions."""


@team.command("apply")
@click.argument("team_file", type=click.Path(path_type=Path))
@click.option("--bootstrap", is_flag=True, help=BOOTSTRAP_HELP)
@json_option
@click.pass_obj
@handle_errors
def team_apply(obj: Obj, team_file: Path, bootstrap: bool, as_json: bool) -> None:
    """Load TEAM_FILE into the state database (admins only; --bootstrap the first time).
    With --server, the file is checked here, then applied through the API."""
    from shipcaptain.team import load_team_file

    service = _bootstrap(obj, bootstrap)
    load_team_file(team_file)  # its mistakes name the file here
    text = team_file.read_text(encoding="utf-8")
    applied = (service or obj.service).apply_team(text, str(team_file))
    if as_json:
        click.echo(json.dumps(applied))
    else:
        click.echo(
            f"team applied: {len(applied['people'])} people ({', '.join(applied['admins'])} "
            f"admin); audit event #{applied['event']}"
        )


@team.command("show")
@json_option
@click.pass_obj
@handle_errors
def team_show(obj: Obj, as_json: bool) -> None:
    """Show the team and the permissions in force."""
    document = obj.service.team()
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    for p in document["people"]:
        roles = "; ".join(f"{env}: {', '.join(r)}" for env, r in p["roles"].items()) or "no role"
        flags = " [admin]" if p["admin"] else ""
        flags += "" if p["active"] else " [left the team]"
        surfaces = f"  surfaces: {', '.join(p['surfaces'])}" if p["surfaces"] else ""
        click.echo(f"{p['name']}{flags}  {roles}{surfaces}")
    click.echo("\npermissions (action, environment: roles):")
    for row in document["permissions"]:
        click.echo(f"  {row['action']:<18} {row['environment']}: {', '.join(row['roles'])}")
    policy = obj.service.runbook_policy()
    click.echo("\nrunbooks (shipcaptain team runbooks list):")
    for env, about in policy["environments"].items():
        count = sum(1 for r in policy["runbooks"] if r["environment"] == env)
        restricted = about["protected"] or count
        state = "protected, " if about["protected"] else ""
        click.echo(f"  {env}: {state}{count} allowed" if restricted else f"  {env}: any runbook")


@team.group("runbooks")
def team_runbooks() -> None:
    """Which runbooks may run in which environment (the allow-list; admins change it).

    A protected environment (production, unless the team file says `protected: false`;
    any environment the team file marks `protected: true`), or one with an entry on the
    list, runs only the runbooks on its list: by content (sha256 digest of the runbook's
    text: that exact file) or by name (any runbook of that name)."""


@team_runbooks.command("list")
@click.option("--env", "environment", help="Only this environment.")
@json_option
@click.pass_obj
@handle_errors
def team_runbooks_list(obj: Obj, environment: str | None, as_json: bool) -> None:
    """The allow-list, and which environments are protected."""
    policy = obj.service.runbook_policy()
    rules = [r for r in policy["runbooks"] if environment in (None, r["environment"])]
    envs = {e: v for e, v in policy["environments"].items() if environment in (None, e)}
    if as_json:
        click.echo(json.dumps({"environments": envs, "runbooks": rules}, indent=2))
        return
    for env, about in envs.items():
        mine = [r for r in rules if r["environment"] == env]
        state = "protected" if about["protected"] else "not protected"
        rule = "only these runbooks" if mine or about["protected"] else "any runbook"
        click.echo(f"{env} ({state}): {rule}")
        for r in mine:
            note = f"  ({r['note']})" if r["note"] else ""
            click.echo(f"  {r['kind']:<6} {r['value']}  by {r['added_by']}{note}")
        if about["protected"] and not mine:
            click.echo("  (none yet: no release may start here)")


@team_runbooks.command("allow")
@click.argument("target", metavar="RUNBOOK")
@click.option("--env", "environment", required=True, help="The environment, e.g. production.")
@click.option("--by-name", is_flag=True, help="Allow any runbook of this name, not one content.")
@click.option("--note", default="", help="Why, for the audit log.")
@json_option
@click.pass_obj
@handle_errors
def team_runbooks_allow(
    obj: Obj, target: str, environment: str, by_name: bool, note: str, as_json: bool
) -> None:
    """Allow RUNBOOK in an environment (admins only): a runbook file (that content, by
    its sha256), sha256:<digest>, or with --by-name a runbook's name (any content)."""
    from shipcaptain.team import runbook_rule

    rule = runbook_rule(environment, target, by_name=by_name, note=note)
    added = obj.client.allow_runbook(rule, by=obj.person)
    if as_json:
        click.echo(json.dumps({**rule.__dict__, "added": added}))
    else:
        click.echo(
            f"{environment}: {rule.kind} {rule.value} "
            + ("allowed" if added else "was already allowed")
        )


@team_runbooks.command("remove")
@click.argument("target", metavar="RUNBOOK")
@click.option("--env", "environment", required=True, help="The environment, e.g. production.")
@click.option("--by-name", is_flag=True, help="Remove the entry for this runbook name.")
@click.pass_obj
@handle_errors
def team_runbooks_remove(obj: Obj, target: str, environment: str, by_name: bool) -> None:
    """Take RUNBOOK off an environment's allow-list (admins only)."""
    from shipcaptain.team import runbook_rule

    rule = runbook_rule(environment, target, by_name=by_name)
    obj.client.remove_runbook(rule, by=obj.person)
    click.echo(f"{environment}: {rule.kind} {rule.value} no longer allowed")


# ---- tokens --------------------------------------------------------------------------------


@click.group()
def token() -> None:
    """API tokens: shown once, stored as hashes, can expire and be revoked."""


@token.command("create")
@click.option("--for", "person", help="Whose token [default: yours]. Others': admins only.")
@click.option("--label", default="", help="What it is for, e.g. 'laptop' or 'ci'.")
@click.option("--expires-in", help="e.g. 30d, 12h, 90m [default: never]")
@click.option("--bootstrap", is_flag=True, help=BOOTSTRAP_HELP)
@json_option
@click.pass_obj
@handle_errors
def token_create(
    obj: Obj,
    person: str | None,
    label: str,
    expires_in: str | None,
    bootstrap: bool,
    as_json: bool,
) -> None:
    """Make a token. Its secret is printed once, here; only its hash is stored."""
    from shipcaptain.errors import UsageError
    from shipcaptain.runbook.durations import parse_duration

    service = _bootstrap(obj, bootstrap)
    seconds = None
    if expires_in is not None:
        expiry = expires_in.strip()
        if expiry.endswith("d") and expiry[:-1].isdigit():
            seconds = int(expiry[:-1]) * 86400.0
        else:
            try:
                seconds = parse_duration(expiry)
            except ValueError as exc:
                raise UsageError(f"--expires-in: {exc}") from None
    secret, record = (service or obj.service).create_token(person, expires_in=seconds, label=label)
    if as_json:
        from shipcaptain.identity import token_document

        click.echo(json.dumps({**token_document(record), "token": secret}, indent=2))
        return
    click.echo(secret)
    expiry_text = (
        f"expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "never expires"
    )
    click.echo(
        f"token {record.id} for {record.person} ({expiry_text}). This is the only time it "
        "is shown: give it to its owner, who runs `shipcaptain login`.",
        err=True,
    )


@token.command("list")
@click.option("--person", help="Only this person's tokens (admins: anyone's).")
@json_option
@click.pass_obj
@handle_errors
def token_list(obj: Obj, person: str | None, as_json: bool) -> None:
    """List tokens (never their secrets): yours, or everyone's for an admin (with
    --server, the server's)."""
    found = obj.service.list_tokens(person)
    if as_json:
        from shipcaptain.identity import token_document

        click.echo(json.dumps([token_document(t) for t in found], indent=2))
        return
    if not found:
        return
    from shipcaptain.cli.tables import Column, print_table

    columns = [
        Column("ID"),
        Column("PERSON", wrap=True),
        Column("STATE"),
        Column("EXPIRES", wrap=True),
        Column("LABEL", wrap=True),
    ]
    rows = [
        [
            t.id,
            t.person,
            t.state(),
            f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "no expiry",
            t.label,
        ]
        for t in found
    ]
    print_table(columns, rows)


@token.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_obj
@handle_errors
def token_revoke(obj: Obj, token_id: str, as_json: bool) -> None:
    """Revoke a token by its id (yours, or anyone's for an admin)."""
    record = obj.service.revoke_token(token_id)
    if as_json:
        from shipcaptain.identity import token_document

        click.echo(json.dumps(token_document(record), indent=2))
    else:
        click.echo(f"token {record.id} of {record.person} revoked")


@click.command()
@click.option("--token-stdin", is_flag=True, help="Read the token from standard input (scripts).")
@click.pass_obj
@handle_errors
def login(obj: Obj, token_stdin: bool) -> None:
    """Check your token (with --server: on the server) and keep it in your config dir
    (readable by you only)."""
    from shipcaptain.identity import save_token

    if token_stdin:
        secret = sys.stdin.readline().strip()
    else:
        secret = click.prompt("token", hide_input=True).strip()
    name = obj.service_for(secret).user
    path = save_token(secret)
    click.echo(f"logged in as {name}; token kept in {path} (mode 0600)")


# ---- audit ---------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """Prove who did what: verify the audit log, anchor it, export a release's evidence."""


def _check_dict(check: AuditCheck) -> dict[str, object]:
    from shipcaptain.codec import plain

    return plain(check)


def _offline_verify(bundle: Path, anchor: Path, public_key: Path) -> AuditCheck:
    """An evidence bundle checked with only the anchor file and the public key."""
    from shipcaptain.audit.anchors import read_anchors
    from shipcaptain.audit.keys import load_public_key
    from shipcaptain.audit.verify import verify_bundle
    from shipcaptain.errors import UsageError

    try:
        data = json.loads(bundle.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{bundle}: cannot read the bundle: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{bundle}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("release"), dict):
        raise UsageError(f"{bundle}: not an evidence bundle (no release)")
    if not anchor.is_file():
        raise UsageError(f"{anchor}: no such anchor file")
    return verify_bundle(data, read_anchors(anchor), load_public_key(public_key))


@audit.command("verify")
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check this evidence bundle (evidence-<release>.json) instead of the database: "
    "needs --anchor and --public-key, and no database or token.",
)
@click.option(
    "--anchor",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The anchor file (audit-anchors.jsonl) to check the bundle against.",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The audit public key (PEM, from `shipcaptain audit public-key`).",
)
@json_option
@click.pass_obj
@handle_errors
def audit_verify(
    obj: Obj, bundle: Path | None, anchor: Path | None, public_key: Path | None, as_json: bool
) -> None:
    """Check the audit log: every hash and link, each event's MAC with the audit key, and
    the signed checkpoints in the anchor file (a removed tail or a deleted log shows there).
    With --bundle: an evidence bundle, with only the anchor file and the public key.
    Exit 5 and name the first bad event or anchor."""
    from shipcaptain.errors import UsageError

    obj.reads_only()
    if bundle is not None or anchor is not None or public_key is not None:
        if bundle is None or anchor is None or public_key is None:
            raise UsageError("--bundle, --anchor and --public-key go together")
        check = _offline_verify(bundle, anchor, public_key)
        what = f"evidence bundle {bundle.name}"
    else:
        check = obj.service.verify_audit()
        what = "audit log"
    if as_json:
        click.echo(json.dumps(_check_dict(check)))
    elif check.ok:
        anchored = (
            f"; signed checkpoints: {check.anchors_checked}, the newest covers "
            f"{check.anchored} events"
            if check.anchors_checked
            else "; no signed checkpoint yet (run `shipcaptain audit anchor`)"
        )
        click.echo(f"{what} intact: {check.events_checked} events, every link checks out{anchored}")
    else:
        where = f"event #{check.broken_seq}" if check.broken_seq else "its checkpoint"
        if check.broken_anchor:
            where += f" (anchor line {check.broken_anchor})"
        click.echo(
            f"{what} BROKEN at {where}: {check.reason} "
            f"({check.events_checked} events before it check out)",
            err=True,
        )
    if not check.ok:
        raise SystemExit(5)


@audit.command("anchor")
@json_option
@click.pass_obj
@handle_errors
def audit_anchor(obj: Obj, as_json: bool) -> None:
    """Sign the audit log's head now and append it to the anchor file (and push it to the
    Git ref and the webhook when they are set). The engine does this at each release's end."""
    result = obj.service.anchor_audit()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    checkpoint = result["checkpoint"]
    verb = "anchored" if result["written"] else "already anchored"
    click.echo(
        f"{verb}: {checkpoint['size']} events, head {checkpoint['head']} "
        f"(key {checkpoint['key_id']}) in {result['file']}"
    )
    for problem in result["problems"]:
        click.echo(f"warning: {problem}", err=True)


@audit.command("public-key")
@click.pass_obj
@handle_errors
def audit_public_key(obj: Obj) -> None:
    """Print the audit public key (PEM): give it to auditors with the anchor file."""
    click.echo(obj.service.audit_public_key(), nl=False)


@audit.command("export")
@click.argument("release_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write evidence-<release>.json and .md into [default: current folder]",
)
@click.pass_obj
@handle_errors
def audit_export(obj: Obj, release_id: str, output: Path | None) -> None:
    """Write a release's evidence bundle (made from the audit log, with its signed
    checkpoint): JSON for machines, Markdown for people."""
    from shipcaptain.evidence import write_bundle

    bundle = obj.service.evidence_bundle(release_id)
    paths = write_bundle(bundle, output or Path.cwd())
    for path in paths:
        click.echo(str(path))


def register(group: click.Group) -> None:
    group.add_command(team)
    group.add_command(token)
    group.add_command(login)
    group.add_command(audit)
