"""A release's evidence bundle: what happened, who decided what having seen what, and the
proof that the record is whole.

``shipcaptain audit export RELEASE`` writes it twice: ``evidence-<release>.json`` for
machines and ``evidence-<release>.md`` for people. It holds the release (runbook name and
digest, environment, parameters, who started it), the timeline (every audit event of the
release with its sequence number and hash), the approvals (each gate, each decision with
the evidence the gate showed at that moment), every step's outputs, the database migration
versions, the digests (runbook, images, commits) and metric measurements found in the step
outputs, and the result of verifying the whole audit chain.

Nothing secret goes in: every string passes :func:`scrub` (passwords in URLs, shipcaptain
tokens, webhook URLs), and the engine already redacts the secrets it knows from outputs.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipcaptain.redact import scrub_value
from shipcaptain.store.audit import canonical_json
from shipcaptain.store.records import status_change, utcnow

if TYPE_CHECKING:
    from shipcaptain.client import Client

BUNDLE_VERSION = 1


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _find(outputs: dict[str, Any], words: tuple[str, ...]) -> dict[str, Any]:
    """The outputs whose key mentions one of ``words`` (at any depth, by dotted path)."""
    found: dict[str, Any] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                here = f"{path}.{key}" if path else str(key)
                if any(word in str(key).lower() for word in words):
                    found[here] = inner
                else:
                    walk(inner, here)

    walk(outputs, "")
    return found


def build_bundle(client: Client, release_id: str, *, exported_by: str) -> dict[str, Any]:
    """The evidence bundle of one release, as plain JSON data."""
    store = client.store
    view = client.show(release_id)
    release = view.release
    decisions = store.list_decisions(release_id)
    approvals = []
    for gate in view.gates:
        approvals.append(
            {
                "step": gate.step_id,
                "run": gate.run,
                "kind": gate.kind,
                "prompt": gate.prompt,
                "required": {"roles": gate.roles, "people": gate.people, "quorum": gate.quorum},
                "status": gate.status,
                "opened_at": gate.opened_at,
                "closed_at": gate.closed_at,
                "decisions": [
                    {
                        "person": d.user,
                        "role": d.role,
                        "decision": d.decision,
                        "comment": d.comment,
                        "at": d.at,
                        "evidence_seen": d.evidence,
                    }
                    for d in decisions
                    if d.step_id == gate.step_id and d.run == gate.run
                ],
            }
        )
    steps = []
    migrations: dict[str, Any] = {}
    digests: dict[str, Any] = {"runbook": release.runbook_digest}
    metrics: dict[str, Any] = {}
    for step in view.steps:
        record = step.record
        outputs = dict(record.outputs) if record else {}
        steps.append(
            {
                "id": step.id,
                "phase": step.phase,
                "action": step.action,
                "status": step.status,
                "run": record.run if record else None,
                "attempt": record.attempt if record else None,
                "started_at": record.started_at if record else None,
                "ended_at": record.ended_at if record else None,
                "summary": record.summary if record else "",
                "outputs": outputs,
            }
        )
        for key, value in _find(outputs, ("migration", "version")).items():
            if "migration" in step.action or "migration" in key:
                migrations[f"{step.id}.{key}"] = value
        for key, value in _find(outputs, ("digest", "commit", "sha")).items():
            digests[f"{step.id}.{key}"] = value
        if step.action.startswith(("metrics", "analysis", "prometheus")) or "metric" in step.action:
            metrics[step.id] = outputs
        else:
            for key, value in _find(outputs, ("metric", "measurement", "value")).items():
                metrics[f"{step.id}.{key}"] = value
    check = store.verify_events()
    bundle = {
        "bundle_version": BUNDLE_VERSION,
        "exported_at": utcnow(),
        "exported_by": exported_by,
        "release": {
            "id": release.id,
            "runbook": release.runbook_name,
            "runbook_digest": release.runbook_digest,
            "environment": release.environment,
            "params": release.params,
            "status": release.status,
            "run": release.run,
            "started_by": release.started_by,
            "created_at": release.created_at,
            "started_at": release.started_at,
            "ended_at": release.ended_at,
            "reason": release.reason,
        },
        "approvals": approvals,
        "steps": steps,
        "migrations": migrations,
        "digests": digests,
        "metrics": metrics,
        "timeline": [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "kind": e.kind,
                "step": e.step_id,
                "message": e.message,
                "data": e.data,
                "hash": e.hash,
            }
            for e in view.events
        ],
        "audit_chain": {
            "ok": check.ok,
            "events_checked": check.events_checked,
            "broken_seq": check.broken_seq,
            "reason": check.reason,
        },
    }
    plain = scrub_value(_plain(bundle))
    plain["bundle_sha256"] = _sha256(plain)
    return dict(plain)


def _sha256(value: Any) -> str:
    import hashlib

    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def write_bundle(bundle: dict[str, Any], folder: Path) -> list[Path]:
    """Write ``evidence-<release>.json`` and ``.md`` into ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rid = bundle["release"]["id"]
    json_path = folder / f"evidence-{rid}.json"
    md_path = folder / f"evidence-{rid}.md"
    json_path.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(bundle), encoding="utf-8")
    return [json_path, md_path]


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(bundle: dict[str, Any]) -> str:
    """The bundle as a report a person reads."""
    r = bundle["release"]
    chain = bundle["audit_chain"]
    out = [
        f"# Evidence: release {r['id']}",
        "",
        f"- Runbook: {r['runbook']} (sha256 {r['runbook_digest']})",
        f"- Environment: {r['environment']}",
        f"- Parameters: {_cell(r['params'])}",
        f"- Started by: {r['started_by']} at {r['started_at'] or r['created_at']}",
        f"- Outcome: **{r['status']}** (run {r['run']})"
        + (f": {r['reason']}" if r["reason"] else ""),
        f"- Exported by {bundle['exported_by']} at {bundle['exported_at']}",
        "- Audit chain: "
        + (
            f"intact ({chain['events_checked']} events verified)"
            if chain["ok"]
            else f"**BROKEN at event #{chain['broken_seq']}**: {chain['reason']}"
        ),
        f"- Bundle sha256: {bundle['bundle_sha256']}",
        "",
        "## Approvals",
        "",
    ]
    if not bundle["approvals"]:
        out.append("No gate opened in this release.")
    for gate in bundle["approvals"]:
        req = gate["required"]
        who = ", ".join([*(f"role {x}" for x in req["roles"]), *req["people"]]) or "anyone"
        out += [
            f"### {gate['step']} (run {gate['run']}): {gate['status']}",
            "",
            f"{gate['prompt']}",
            "",
            f"Needed {req['quorum']} of {who}.",
            "",
        ]
        for d in gate["decisions"]:
            role = f" as {d['role']}" if d["role"] else ""
            comment = f": {d['comment']}" if d["comment"] else ""
            verb = {"approve": "approved", "reject": "rejected"}.get(d["decision"], d["decision"])
            out.append(f"- {d['at']} **{d['person']}**{role} {verb}{comment}")
            if d["evidence_seen"]:
                out += [
                    "",
                    "  Evidence shown at that moment:",
                    "",
                    "  ```json",
                    *(
                        "  " + line
                        for line in json.dumps(d["evidence_seen"], indent=2).splitlines()
                    ),
                    "  ```",
                ]
        out.append("")
    out += ["", "## Steps", "", "| step | phase | status | summary |", "|---|---|---|---|"]
    for s in bundle["steps"]:
        out.append(f"| {s['id']} | {s['phase']} | {s['status']} | {_cell(s['summary'] or '')} |")
    for title, key in (
        ("Migration versions", "migrations"),
        ("Digests", "digests"),
        ("Metric measurements", "metrics"),
    ):
        out += ["", f"## {title}", ""]
        values = bundle[key]
        if not values:
            out.append("None recorded.")
        for name, value in values.items():
            out.append(f"- `{name}`: {_cell(value)}")
    out += [
        "",
        "## Timeline",
        "",
        "| # | at | who | what | status | message |",
        "|---|---|---|---|---|---|",
    ]
    for e in bundle["timeline"]:
        what = e["kind"] + (f" ({e['step']})" if e["step"] else "")
        change = status_change(e["data"])
        out.append(
            f"| {e['seq']} | {e['at']} | {e['actor']} | {what} | {change} | {_cell(e['message'])} |"
        )
    out += [
        "",
        "Every step's full outputs are in the JSON bundle next to this report.",
        "",
    ]
    return "\n".join(out)
