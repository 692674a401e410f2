"""The audit log against someone who can write the state database but holds no audit key:
each tamper is found by `shipcaptain audit verify` (the CLI, as its own process: its exit
code and JSON; its text form in the test's process), naming the first bad event or anchor;
an evidence bundle is checked with only the anchor file and the public key, by shipcaptain
(as its own process) and by an independent verifier written here."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from helpers.databases import copy_of_database, engine_database, tamper_with_events
from helpers.releases import harness, write_runbook
from helpers.team import OPEN_ENVIRONMENTS, run_here
from shipcaptain.identity import create_token
from shipcaptain.records import EventRecord, Person
from shipcaptain.settings import Settings
from shipcaptain.store.audit import event_hash

CLI = [sys.executable, "-m", "shipcaptain.cli.main"]

RUNBOOK = """\
name: gated
environment: "{{ environment }}"
parameters:
  environment: {default: production}
roles:
  release_captain: {title: Release Captain}
  oncall_sre: {title: On-Call SRE}
phases:
  - id: one
    steps:
      - {id: build, action: shell, with: {command: "echo built"}}
      - id: go
        action: approval
        needs: [build]
        with:
          prompt: ship it?
          roles: [oncall_sre]
          evidence: {error_rate: 0.001, diff: "3 files changed"}
          timeout: 1h
      - {id: ship, action: shell, needs: [go], with: {command: "echo shipped"}}
"""

TEAM = [
    Person(name="casey", admin=True, roles={"*": ("release_captain",)}),
    Person(name="sam", roles={"production": ("oncall_sre",)}),
]


@dataclass
class Released:
    """A release that ran to its end (anchored by the engine), and the CLI on its data."""

    database_url: str
    workdir: Path
    release_id: str
    token: str
    anchor_size: int

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def anchor_file(self) -> Path:
        return Settings(data_dir=self.data_dir, database_url=self.database_url).anchor_path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
        return env | {
            "SHIPCAPTAIN_DATABASE_URL": self.database_url,
            "SHIPCAPTAIN_DATA_DIR": str(self.data_dir),
            "SHIPCAPTAIN_TOKEN": self.token,
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI as its own process."""
        return subprocess.run(
            [*CLI, *args],
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def here(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command in this process (click's runner, ``run_here``): for what only
        prepares a check (a bundle, the public key) or says in words what the process said."""
        return run_here(self.env(), self.workdir, *args)

    def verify(self) -> tuple[int, dict[str, Any], str]:
        """``audit verify --json`` as its own process (its exit code and JSON), and its text
        form, which must exit the same, in this process."""
        done = self.cli("audit", "verify", "--json")
        loud = self.here("audit", "verify")
        assert loud.returncode == done.returncode, loud.stderr + loud.stdout
        return done.returncode, json.loads(done.stdout), loud.stderr + loud.stdout

    def export(self, folder: str = "bundle", *, child: bool = False) -> dict[str, Any]:
        """``audit export`` of the release: its own process when the export is what a test
        checks (``child``), else in this process (a bundle to verify)."""
        run = self.cli if child else self.here
        done = run("audit", "export", self.release_id, "-o", folder)
        assert done.returncode == 0, done.stderr
        bundle: dict[str, Any] = json.loads(
            (self.workdir / folder / f"evidence-{self.release_id}.json").read_text()
        )
        return bundle

    def public_key(self) -> Path:
        done = self.here("audit", "public-key")
        assert done.returncode == 0, done.stderr
        path = self.workdir / "audit-public.pem"
        path.write_text(done.stdout)
        return path


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def released_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Released]:
    """The release every test here starts from, run once a module and backend (an engine's
    launch, a gate and its approval); each test tampers with a copy (see ``released``)."""
    workdir = tmp_path_factory.mktemp(f"released-{request.param}")
    runbook = write_runbook(workdir, RUNBOOK)
    with engine_database(request.param, workdir) as url:
        with harness(url, workdir) as h:
            # the default permissions; production runs any runbook (its allow-list is not tested)
            h.client.store.put_team(
                TEAM, actor="test", message="the team", data={},
                permissions={}, environments=OPEN_ENVIRONMENTS,
            )  # fmt: skip
            casey = h.client.store.get_person("casey")
            token, _ = create_token(h.client.store, "sam", expires_in=3600, label="t", by=casey)
            release = h.start(runbook)
            h.wait_for_gate(release.id, "go")
            h.client.decide(release.id, "go", user="sam", decision="approve", comment="looks fine")
            assert h.wait(release.id).status == "succeeded"
        anchors = h.settings.anchor_path.read_text().splitlines()
        [line] = anchors  # the engine anchored once, at the release's end
        size = json.loads(line)["checkpoint"]["size"]
        yield Released(url, workdir, release.id, token, size)


@pytest.fixture
def released(released_once: Released, tmp_path: Path) -> Iterator[Released]:
    """A copy of the module's release for one test: its database (SQLite's file, or a
    PostgreSQL database made from it as a template) and its data folder (audit key, anchors;
    the anchors moved to the copy's database)."""
    with copy_of_database(released_once.database_url, tmp_path) as url:
        shutil.copytree(released_once.data_dir, tmp_path / "data")
        copy = Released(
            url, tmp_path, released_once.release_id, released_once.token,
            released_once.anchor_size,
        )  # fmt: skip
        moved = released_once.anchor_file.relative_to(released_once.data_dir)
        copy.anchor_file.parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / moved).rename(copy.anchor_file)
        yield copy


def events_of(url: str) -> list[EventRecord]:
    from shipcaptain.store import open_store

    with open_store(url) as store:
        return store.list_events(limit=10_000)


def rewrite_from(url: str, seq: int, **changes: Any) -> None:
    """Edit event ``seq`` and recompute every hash from there on, as a forger would
    (the MACs cannot be recomputed without the key: they are left as they were)."""
    prev = None
    for event in events_of(url):
        if event.seq < seq:
            continue
        fields = {
            "seq": event.seq,
            "at": event.at,
            "release_id": event.release_id,
            "step_id": event.step_id,
            "kind": event.kind,
            "actor": event.actor,
            "message": event.message,
            "data": event.data,
            "prev_hash": prev or event.prev_hash,
        }
        if event.seq == seq:
            fields |= changes
        prev = event_hash(**fields)
        tamper_with_events(
            url,
            "UPDATE sc_events SET actor = :actor, message = :message, prev_hash = :prev, "
            "hash = :hash WHERE seq = :seq",
            actor=fields["actor"],
            message=fields["message"],
            prev=fields["prev_hash"],
            hash=prev,
            seq=event.seq,
        )


def test_the_untampered_log_and_its_bundle_verify(released: Released) -> None:
    code, check, text = released.verify()
    assert code == 0, text
    assert check["ok"]
    assert check["keyed"]
    assert check["anchors_checked"] == 1
    assert check["anchored"] == released.anchor_size
    assert f"signed checkpoints: 1, the newest covers {released.anchor_size} events" in text
    again = released.cli("audit", "anchor")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(("already anchored", "anchored"))

    bundle = released.export()
    key = released.public_key()
    offline = released.cli(
        "audit",
        "verify",
        "--bundle",
        f"bundle/evidence-{released.release_id}.json",
        "--anchor",
        str(released.anchor_file),
        "--public-key",
        str(key),
    )
    assert offline.returncode == 0, offline.stderr
    assert f"evidence bundle evidence-{released.release_id}.json intact" in offline.stdout
    [gate] = bundle["approvals"]
    [decision] = gate["decisions"]
    assert (decision["person"], decision["role"], decision["comment"]) == (
        "sam",
        "oncall_sre",
        "looks fine",
    )
    assert decision["evidence_seen"]["error_rate"] == 0.001
    assert bundle["release"]["status"] == "succeeded"
    assert bundle["release"]["started_by"] == "casey"
    assert [s["id"] for s in bundle["steps"]] == ["build", "go", "ship"]
    assert bundle["steps"][2]["status"] == "succeeded"
    assert independent_verify(bundle, released.anchor_file.read_text(), key.read_bytes())


def independent_verify(bundle: dict[str, Any], anchor_file: str, public_pem: bytes) -> bool:
    """A verifier from docs/reference/audit-format.md alone: hashlib and cryptography."""

    def canonical(value: Any) -> bytes:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    anchor = bundle["chain"]["anchor"]
    checkpoint = anchor["checkpoint"]
    public = load_pem_public_key(public_pem)
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(anchor["signature"]), canonical(checkpoint))
    assert anchor in [json.loads(line) for line in anchor_file.splitlines()]
    previous: dict[str, Any] | None = None
    for entry in bundle["chain"]["events"]:
        event = json.loads(entry["document"])
        assert hashlib.sha256(entry["document"].encode("utf-8")).hexdigest() == entry["hash"]
        assert event["seq"] == entry["seq"]
        if event["seq"] == 1:
            assert event["prev_hash"] == "0" * 64
            assert entry["hash"] == checkpoint["log"]
        if previous is not None:
            assert event["seq"] == previous["seq"] + 1
            assert event["prev_hash"] == previous["hash"]
        previous = entry
    assert previous is not None
    assert (previous["seq"], previous["hash"]) == (checkpoint["size"], checkpoint["head"])
    decided = [
        (event["actor"], event["data"]["decision"], event["data"]["comment"])
        for event in (json.loads(e["document"]) for e in bundle["chain"]["events"])
        if event["kind"] == "gate.approved" and event["release_id"] == bundle["release"]["id"]
    ]
    shown = [
        (d["person"], d["decision"], d["comment"]) for d in bundle["approvals"][0]["decisions"]
    ]
    return decided == shown


def test_an_edited_event_with_recomputed_hashes_is_found(released: Released) -> None:
    [decided] = [e for e in events_of(released.database_url) if e.kind == "gate.approved"]
    rewrite_from(released.database_url, decided.seq, actor="mallory")
    code, check, text = released.verify()
    assert code == 5
    assert check["broken_seq"] == decided.seq
    assert f"BROKEN at event #{decided.seq}" in text
    assert "MAC does not match the audit key" in text


def test_a_forged_event_appended_is_found(released: Released) -> None:
    last = events_of(released.database_url)[-1]
    fields: dict[str, Any] = {
        "seq": last.seq + 1,
        "at": last.at,
        "release_id": released.release_id,
        "step_id": "go",
        "kind": "gate.approved",
        "actor": "mallory",
        "message": "mallory approved",
        "data": {},
        "prev_hash": last.hash,
    }
    tamper_with_events(
        released.database_url,
        "INSERT INTO sc_events (seq, at, release_id, step_id, kind, actor, message, data, "
        "prev_hash, hash, mac) VALUES (:seq, :at, :release_id, :step_id, :kind, :actor, "
        ":message, '{}', :prev_hash, :hash, :mac)",
        **{**fields, "at": last.at.isoformat(timespec="microseconds")},
        hash=event_hash(**fields),
        mac="0" * 64,
    )
    code, check, text = released.verify()
    assert code == 5
    assert check["broken_seq"] == last.seq + 1
    assert f"event {last.seq + 1}'s MAC does not match the audit key" in text
    # nor will the engine or `audit anchor` sign it
    refused = released.cli("audit", "anchor")
    assert refused.returncode == 5
    assert "not anchoring the audit log" in refused.stderr


def test_a_truncated_tail_is_found_against_the_anchor(released: Released) -> None:
    cut = released.anchor_size - 2
    tamper_with_events(released.database_url, f"DELETE FROM sc_events WHERE seq > {cut}")
    code, check, text = released.verify()
    assert code == 5
    assert check["broken_seq"] == cut + 1
    assert check["broken_anchor"] == 1
    assert f"event(s) {cut + 1}..{released.anchor_size} were removed" in text
    assert "anchor line 1" in text


def test_a_deleted_log_is_found_against_the_anchor(released: Released) -> None:
    tamper_with_events(released.database_url, "DELETE FROM sc_events")
    code, check, text = released.verify()
    assert code == 5
    assert check["broken_anchor"] == 1
    assert "the audit log is empty" in text
    assert "the log was deleted" in text


def test_a_forged_decision_row_is_not_in_the_evidence(released: Released) -> None:
    tamper_with_events(
        released.database_url,
        "INSERT INTO sc_decisions (release_id, step_id, run, user_name, role, decision, "
        "comment, at, evidence) VALUES (:r, 'go', 1, 'mallory', 'oncall_sre', 'approve', "
        "'forged', '2026-01-01T00:00:00+00:00', '{}')",
        r=released.release_id,
    )
    bundle = released.export(child=True)
    people = [d["person"] for g in bundle["approvals"] for d in g["decisions"]]
    assert people == ["sam"]
    assert "mallory" not in json.dumps(bundle)
    assert bundle["audit_chain"]["ok"] is True
    report = (released.workdir / "bundle" / f"evidence-{released.release_id}.md").read_text()
    assert "mallory" not in report


def test_an_edited_bundle_is_found_offline(released: Released) -> None:
    bundle = released.export()
    key = str(released.public_key())
    path = released.workdir / "edited.json"

    def verify_edited(edited: dict[str, Any]) -> str:
        path.write_text(json.dumps(edited))
        done = released.cli(
            "audit", "verify", "--bundle", str(path), "--anchor", str(released.anchor_file),
            "--public-key", key,
        )  # fmt: skip
        assert done.returncode == 5, done.stdout
        return done.stderr

    forged = json.loads(json.dumps(bundle))
    forged["approvals"][0]["decisions"][0]["person"] = "mallory"
    assert "the bundle's approvals is not what its audit events record" in verify_edited(forged)

    # an event's text edited and every hash after it recomputed: the checkpoint disagrees
    rechained = json.loads(json.dumps(bundle))
    events = rechained["chain"]["events"]
    first = json.loads(events[0]["document"])
    first["actor"] = "mallory"
    prev = None
    for entry in events:
        document = json.loads(entry["document"]) if prev else first
        if prev:
            document["prev_hash"] = prev
        entry["document"] = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        entry["hash"] = prev = hashlib.sha256(entry["document"].encode()).hexdigest()
    told = verify_edited(rechained)
    size = released.anchor_size
    assert f"BROKEN at event #{size} (anchor line 1)" in told
    assert f"is not the event the checkpoint of {size} events" in told

    # a checkpoint that is not in the anchor file (or not signed by this key)
    unsigned = json.loads(json.dumps(bundle))
    unsigned["chain"]["anchor"]["checkpoint"]["size"] += 1
    assert "is not signed by this key" in verify_edited(unsigned)
