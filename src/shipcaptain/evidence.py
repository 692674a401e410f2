"""A release's evidence bundle: what happened, who decided what having seen what, and the
proof that the record is whole, checkable without the state database.

``shipcaptain audit export RELEASE`` writes it twice: ``evidence-<release>.json`` for
machines and ``evidence-<release>.md`` for people. Everything in it is made from the audit
log's events, never from the tables a database owner could edit (a decision row forged in
the decisions table does not show): the release (runbook name and digest, environment,
parameters, who started it), the timeline (every event of the release), the approvals
(each gate, each decision with the evidence it showed), every step's outputs, the
migration versions, digests and metric measurements found in those outputs.

``chain`` is the proof: every event from the release's first to the signed checkpoint that
covers its end (other releases' events in between included: each hash depends on the one
before), each as the exact text hashed, and that checkpoint. ``shipcaptain audit verify
--bundle B --anchor A --public-key K`` checks it with no database: the hashes, the links,
the checkpoint's signature, that the checkpoint is in the anchor file, and that every
section above is what the chain's events say (docs/reference/audit-format.md).

Nothing secret goes in: events are scrubbed when they are written (passwords in URLs,
shipcaptain tokens, webhook URLs), and the engine redacts the secrets it knows from outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipcaptain.errors import InvalidState, NotFound
from shipcaptain.events import (
    GateApproved,
    GateClosed,
    GateConfirmed,
    GateRejected,
    ReleaseCreated,
    StepStarted,
)
from shipcaptain.records import FINISHED_STEP_STATUSES, status_change, utcnow
from shipcaptain.redact import scrub_value
from shipcaptain.store.audit import canonical_json, document_of

if TYPE_CHECKING:
    from shipcaptain.audit.anchors import Anchor
    from shipcaptain.client import Client

BUNDLE_VERSION = 2
_RELEASE_ENDS = ("succeeded", "failed", "rolled_back", "cancelled")
_DECISIONS = (GateApproved.kind, GateRejected.kind, GateConfirmed.kind)


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


def _release_section(release_id: str, mine: list[dict[str, Any]]) -> dict[str, Any]:
    created = next((e for e in mine if e["kind"] == ReleaseCreated.kind), None)
    given = created["data"] if created else {}
    changes = [e for e in mine if e["kind"].startswith("release.") and "after" in e["data"]]
    runs = [int(e["data"]["run"]) for e in mine if isinstance(e["data"].get("run"), int)]
    started = next((e for e in changes if e["data"]["after"] == "running"), None)
    ended = [e for e in changes if e["data"]["after"] in _RELEASE_ENDS]
    return {
        "id": release_id,
        "runbook": given.get("runbook"),
        "runbook_digest": given.get("runbook_digest"),
        "environment": given.get("environment"),
        "params": given.get("params", {}),
        "status": changes[-1]["data"]["after"] if changes else "unknown",
        "run": max(runs, default=1),
        "started_by": created["actor"] if created else None,
        "created_at": created["at"] if created else None,
        "started_at": started["at"] if started else None,
        "ended_at": ended[-1]["at"] if ended else None,
        "reason": changes[-1]["message"] if changes and changes[-1] in ended else "",
    }


def _approvals(mine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gates: dict[tuple[str, int], dict[str, Any]] = {}
    for e in mine:
        data, step = e["data"], e["step_id"]
        if e["kind"].startswith("gate.") and e["kind"].endswith(".opened") and "prompt" in data:
            gates[(step, int(data["run"]))] = {
                "step": step,
                "run": int(data["run"]),
                "kind": data["kind"],
                "prompt": data["prompt"],
                "required": {
                    "roles": data["roles"],
                    "people": data["people"],
                    "quorum": data["quorum"],
                },
                "status": "waiting",
                "opened_at": e["at"],
                "closed_at": None,
                "decisions": [],
            }
            continue
        gate = gates.get((step, int(data.get("run", 0))))
        if gate is None:
            continue
        if e["kind"] == GateClosed.kind:
            gate["status"], gate["closed_at"] = data["status"], e["at"]
        elif e["kind"] in _DECISIONS and "decision" in data:
            gate["decisions"].append(
                {
                    "person": e["actor"],
                    "role": data.get("role"),
                    "decision": data["decision"],
                    "comment": data.get("comment", ""),
                    "at": data.get("at", e["at"]),
                    "evidence_seen": data.get("evidence", {}),
                }
            )
    return list(gates.values())


def _steps(mine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    created = next((e for e in mine if e["kind"] == ReleaseCreated.kind), None)
    planned = created["data"].get("steps", []) if created else []
    steps: dict[str, dict[str, Any]] = {
        s["id"]: {"id": s["id"], "phase": s["phase"], "action": s["action"]} for s in planned
    }
    for e in mine:
        step = e["step_id"]
        if step is None or not (e["kind"].startswith("step.") or e["kind"].endswith(".opened")):
            continue
        if planned and step not in steps and not step.startswith("rollback/"):
            continue  # a guard's check (``<step>:guard:<check>``) is part of its step
        row = steps.setdefault(
            step,
            {"id": step, "phase": "rollback" if step.startswith("rollback/") else "", "action": ""},
        )
        data = e["data"]
        if "after" in data:
            row["status"] = data["after"]
        if e["kind"] == StepStarted.kind:
            if row.get("run") != data.get("run"):
                row["started_at"] = e["at"]
            row["run"], row["attempt"] = data.get("run"), data.get("attempt")
            row["ended_at"], row["summary"], row["outputs"] = None, "", {}
        elif data.get("after") in FINISHED_STEP_STATUSES:
            row["run"] = data.get("run", row.get("run"))
            row["ended_at"], row["summary"] = e["at"], e["message"]
            row["outputs"] = data.get("outputs", {})
    empty: dict[str, Any] = {
        "status": "pending",
        "run": None,
        "attempt": None,
        "started_at": None,
        "ended_at": None,
        "summary": "",
        "outputs": {},
    }
    return [{**empty, **row} for row in steps.values()]


def derive_sections(release_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Every section of the bundle but the chain, from the chain's events (their hashed
    fields and ``hash``): what verifying a bundle recomputes and compares."""
    mine = [e for e in events if e["release_id"] == release_id]
    steps = _steps(mine)
    migrations: dict[str, Any] = {}
    digests: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for step in steps:
        outputs = step["outputs"]
        for key, value in _find(outputs, ("migration", "version")).items():
            if "migration" in step["action"] or "migration" in key:
                migrations[f"{step['id']}.{key}"] = value
        for key, value in _find(outputs, ("digest", "commit", "sha")).items():
            digests[f"{step['id']}.{key}"] = value
        if step["action"].startswith(("metrics", "analysis", "prometheus")) or (
            "metric" in step["action"]
        ):
            metrics[step["id"]] = outputs
        else:
            for key, value in _find(outputs, ("metric", "measurement", "value")).items():
                metrics[f"{step['id']}.{key}"] = value
    release = _release_section(release_id, mine)
    return {
        "release": release,
        "approvals": _approvals(mine),
        "steps": steps,
        "migrations": migrations,
        "digests": {"runbook": release["runbook_digest"], **digests},
        "metrics": metrics,
        "timeline": [
            {
                "seq": e["seq"],
                "at": e["at"],
                "actor": e["actor"],
                "kind": e["kind"],
                "step": e["step_id"],
                "message": e["message"],
                "data": e["data"],
                "hash": e["hash"],
            }
            for e in mine
        ],
    }


def _covering(anchors: list[Anchor], log: str, seq: int) -> Anchor | None:
    """The first anchor of ``log`` that covers event ``seq``."""
    found = [a for a in anchors if a.log == log and a.size >= seq]
    return min(found, key=lambda a: a.size, default=None)


def build_bundle(client: Client, release_id: str, *, exported_by: str) -> dict[str, Any]:
    """The evidence bundle of one release, as plain JSON data. When no anchor covers the
    release's last event yet, the log is anchored first (refused if it does not verify)."""
    from shipcaptain.audit.anchors import anchor_log, read_anchors
    from shipcaptain.audit.verify import check_log

    store = client.store
    store.get_release(release_id)  # NotFound for an unknown release
    span = store.release_event_span(release_id)
    first = store.get_event(1)
    if span is None or first is None:
        raise NotFound(f"release {release_id!r} has no event in the audit log")
    key = client.audit_key()
    anchors = read_anchors(client.settings.anchor_path)
    anchor = _covering(anchors, first.hash, span[1])
    if anchor is None:
        anchor = anchor_log(store, key, client.settings).anchor
        anchors = read_anchors(client.settings.anchor_path)
    stretch = list(store.events_between(span[0], anchor.size))
    if len(stretch) != anchor.size - span[0] + 1 or stretch[-1].hash != anchor.head:
        raise InvalidState(
            f"the audit log does not match {anchor.label}: run shipcaptain audit verify"
        )
    documents = [document_of(e) for e in stretch]
    events = [
        {**json.loads(doc), "hash": e.hash} for doc, e in zip(documents, stretch, strict=True)
    ]
    check = check_log(store, key.public, anchors, key=key)
    bundle: dict[str, Any] = {
        "bundle_version": BUNDLE_VERSION,
        "exported_at": utcnow().isoformat(),
        "exported_by": scrub_value(exported_by),
        **derive_sections(release_id, events),
        "chain": {
            "events": [
                {"seq": e.seq, "hash": e.hash, "document": doc}
                for e, doc in zip(stretch, documents, strict=True)
            ],
            "anchor": anchor.document(),
            "public_key_id": key.id,
        },
        "audit_chain": dataclasses.asdict(check),
    }
    bundle["bundle_sha256"] = hashlib.sha256(canonical_json(bundle).encode("utf-8")).hexdigest()
    return bundle


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
    anchor = bundle["chain"]["anchor"]["checkpoint"]
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
        f"- Signed checkpoint: {anchor['size']} events, head {anchor['head']}, at "
        f"{anchor['at']} (key {anchor['key_id']}); check it with `shipcaptain audit verify "
        f"--bundle evidence-{r['id']}.json --anchor audit-anchors.jsonl --public-key KEY`",
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
