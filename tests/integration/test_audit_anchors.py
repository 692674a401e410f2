"""The keyed audit chain and its anchors on both databases: each event's MAC, events from
before the chain was keyed, signed checkpoints appended to the anchor file (idempotent at a
release's end), pushed as a Git ref and posted to a webhook, and the key file itself."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers.databases import tamper_with_events
from helpers.releases import harness, write_runbook
from shipcaptain.audit.anchors import ANCHOR_REF, anchor_log, read_anchors, sign_checkpoint
from shipcaptain.audit.keys import AuditKey, load_public_key
from shipcaptain.audit.verify import check_log
from shipcaptain.errors import InvalidSettings, InvalidState, UsageError
from shipcaptain.settings import Settings
from shipcaptain.store import Store, backend_of, open_store


def settings_in(tmp_path: Path, **more: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", **more)


def fill(store: Store, count: int, release: str = "rel-1") -> None:
    for n in range(count):
        store.append_event(release, None, "test", "ann", f"event {n}")


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def witness(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A webhook receiver on a free loopback port; its URL."""
    server = _Quiet(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_each_event_carries_a_mac_of_its_hash(store: Store) -> None:
    fill(store, 3)
    key = store.audit_key
    assert key is not None
    assert all(e.mac == key.mac(e.hash) for e in store.list_events())
    check = store.verify_events(key=key)
    assert (check.ok, check.events_checked) == (True, 3)


def test_events_from_before_the_key_are_accepted_only_first(store: Store, store_url: str) -> None:
    key = store.audit_key
    assert key is not None
    with open_store(store_url) as unkeyed:  # an older shipcaptain: no MAC
        fill(unkeyed, 2)
    fill(store, 2)
    assert store.verify_events(key=key).ok
    with open_store(store_url) as unkeyed:
        fill(unkeyed, 1)
    check = store.verify_events(key=key)
    assert (check.ok, check.broken_seq) == (False, 5)
    assert check.reason == "event 5 carries no MAC (written without the audit key)"


def test_another_key_does_not_check_out(store: Store) -> None:
    fill(store, 2)
    check = store.verify_events(key=AuditKey.generate())
    assert (check.ok, check.broken_seq) == (False, 1)
    assert "MAC does not match the audit key" in str(check.reason)


def test_anchoring_signs_the_head_and_is_idempotent(store: Store, tmp_path: Path) -> None:
    key = store.audit_key
    assert isinstance(key, AuditKey)
    settings = settings_in(tmp_path)
    with pytest.raises(InvalidState, match="the audit log is empty"):
        anchor_log(store, key, settings)
    fill(store, 3)
    first = anchor_log(store, key, settings, release="rel-1", run=1)
    assert first.written
    assert first.anchor.size == 3
    assert first.anchor.line == 1
    replayed = anchor_log(store, key, settings, release="rel-1", run=1)
    assert not replayed.written
    assert replayed.anchor == first.anchor
    unchanged = anchor_log(store, key, settings)
    assert not unchanged.written
    fill(store, 2)
    later = anchor_log(store, key, settings)
    assert later.written
    assert later.anchor.size == 5
    anchors = read_anchors(settings.anchor_path)
    assert [a.size for a in anchors] == [3, 5]
    assert anchors[0].checkpoint["release"] == "rel-1"
    assert anchors[0].checkpoint["log"] == store.list_events()[0].hash
    check = check_log(store, key.public, anchors, key=key)
    assert (check.ok, check.anchors_checked, check.anchored) == (True, 2, 5)


def test_a_log_rewritten_before_its_anchor_is_not_signed_again(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    key = store.audit_key
    assert isinstance(key, AuditKey)
    settings = settings_in(tmp_path)
    fill(store, 3)
    anchor_log(store, key, settings)
    tamper_with_events(store_url, "UPDATE sc_events SET hash = :h WHERE seq = 3", h="f" * 64)
    fill(store, 1)
    with pytest.raises(InvalidState, match="event 3 is not the event the checkpoint of 3"):
        anchor_log(store, key, settings)
    assert len(read_anchors(settings.anchor_path)) == 1


def test_an_anchor_signed_by_another_key_is_named(store: Store, tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    fill(store, 2)
    other = AuditKey.generate()
    head = store.list_events()[-1]
    signed = sign_checkpoint(other, log=store.list_events()[0].hash, size=2, head=head.hash,
                             release=None, run=None)  # fmt: skip
    settings.anchor_path.parent.mkdir(parents=True)
    settings.anchor_path.write_text(signed.to_line() + "\n")
    key = store.audit_key
    assert isinstance(key, AuditKey)
    check = check_log(store, key.public, read_anchors(settings.anchor_path), key=key)
    assert (check.ok, check.broken_anchor) == (False, 1)
    assert f"is not signed by this key (it names key {other.id}" in str(check.reason)


def counting_signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The signatures verified from now on, in order (the verifier's own function, counted)."""
    from shipcaptain.audit import verify

    checked: list[str] = []
    real = verify.verify_signature

    def counted(public: Any, message: bytes, signature: str) -> bool:
        checked.append(signature)
        return real(public, message, signature)

    monkeypatch.setattr(verify, "verify_signature", counted)
    return checked


def test_a_release_end_verifies_only_the_anchors_added_since_the_last(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = store.audit_key
    assert isinstance(key, AuditKey)
    settings = settings_in(tmp_path)
    checked = counting_signatures(monkeypatch)
    per_release, lines = [], []
    for n in range(1, 7):
        fill(store, 2, release=f"rel-{n}")
        before = len(checked)
        done = anchor_log(store, key, settings, release=f"rel-{n}", run=1)
        per_release.append(checked[before:])
        lines.append(done.anchor.line)
    anchors = read_anchors(settings.anchor_path)
    assert lines == [1, 2, 3, 4, 5, 6] == [a.line for a in anchors]
    # the first release's end has no anchor to check; each later one checks the anchor
    # the one before it wrote, not every anchor of the file (that grows with each release)
    assert per_release == [[]] + [[a.signature] for a in anchors[:-1]]
    before = len(checked)
    check = check_log(store, key.public, anchors, key=key)  # `audit verify`: every anchor
    assert (check.ok, check.anchors_checked) == (True, 6)
    assert checked[before:] == [a.signature for a in anchors]


def test_an_anchor_changed_after_it_was_verified_is_verified_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = store.audit_key
    assert isinstance(key, AuditKey)
    settings = settings_in(tmp_path)
    for n in (1, 2):
        fill(store, 2, release=f"rel-{n}")
        anchor_log(store, key, settings, release=f"rel-{n}", run=1)
    first, second = read_anchors(settings.anchor_path)
    other = AuditKey.generate()  # the first line rewritten in place, signed by another key
    forged = sign_checkpoint(other, log=first.log, size=first.size, head=first.head,
                             release="rel-1", run=1)  # fmt: skip
    forged_line = json.dumps({**forged.document(), "checkpoint": first.checkpoint})
    settings.anchor_path.write_text(f"{forged_line}\n{second.to_line()}\n")
    checked = counting_signatures(monkeypatch)
    fill(store, 2, release="rel-3")
    with pytest.raises(InvalidState, match=r"line 1 of .* is not signed by this key"):
        anchor_log(store, key, settings, release="rel-3", run=1)
    assert checked == [forged.signature]
    settings.anchor_path.write_text(f"{first.to_line()}\n{second.to_line()}\n")
    assert anchor_log(store, key, settings, release="rel-3", run=1).anchor.line == 3
    assert checked[1:] == [first.signature, second.signature]


def test_an_anchor_appended_since_the_last_reading_is_checked_like_the_others(
    store: Store, tmp_path: Path
) -> None:
    key = store.audit_key
    assert isinstance(key, AuditKey)
    settings = settings_in(tmp_path)
    fill(store, 2, release="rel-1")
    first = anchor_log(store, key, settings, release="rel-1", run=1).anchor
    # appended by someone else: the key's signature, but of another log, and newer
    other_log = sign_checkpoint(key, log="0" * 64, size=first.size, head=first.head,
                                release="rel-x", run=1)  # fmt: skip
    with settings.anchor_path.open("a") as out:
        out.write(other_log.to_line() + "\n")
    fill(store, 2, release="rel-2")
    with pytest.raises(InvalidState, match=r"line 2 of .*: the log was replaced"):
        anchor_log(store, key, settings, release="rel-2", run=1)
    settings.anchor_path.write_text(first.to_line() + "\n")  # the file as it was
    covers_more = sign_checkpoint(key, log=first.log, size=99, head="f" * 64,
                                  release="rel-y", run=1)  # fmt: skip
    with settings.anchor_path.open("a") as out:
        out.write(covers_more.to_line() + "\n")
    with pytest.raises(InvalidState, match=r"line 2 of .* covers 99 events: event"):
        anchor_log(store, key, settings, release="rel-2", run=1)
    settings.anchor_path.write_text(first.to_line() + "\n")
    assert anchor_log(store, key, settings, release="rel-1", run=1).anchor == first  # replayed
    second = anchor_log(store, key, settings, release="rel-2", run=1)
    assert (second.written, second.anchor.line, second.anchor.size) == (True, 2, 4)


def test_checkpoints_go_to_a_git_ref_and_a_webhook(store: Store, tmp_path: Path) -> None:
    remote = tmp_path / "anchors.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    received: list[dict[str, Any]] = []

    class Witness(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with witness(Witness) as url:
        settings = settings_in(
            tmp_path, audit_anchor_git=str(remote), audit_anchor_webhook=f"{url}/checkpoints"
        )
        key = store.audit_key
        assert isinstance(key, AuditKey)
        fill(store, 2)
        first = anchor_log(store, key, settings)
        fill(store, 1)
        second = anchor_log(store, key, settings)
    assert first.problems == []
    assert second.problems == []
    log = subprocess.run(
        ["git", "-C", str(remote), "log", "--format=%s", ANCHOR_REF],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert log == [
        f"audit checkpoint: 3 events, head {second.anchor.head}",
        f"audit checkpoint: 2 events, head {first.anchor.head}",
    ]
    shown = subprocess.run(
        ["git", "-C", str(remote), "show", f"{ANCHOR_REF}:checkpoint.json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(shown) == second.anchor.document()
    assert [r["checkpoint"]["size"] for r in received] == [2, 3]
    assert received[0]["public_key"] == key.public_pem()


def test_a_failing_webhook_is_reported_not_fatal(store: Store, tmp_path: Path) -> None:
    settings = settings_in(tmp_path, audit_anchor_webhook="http://127.0.0.1:9/nobody")
    key = store.audit_key
    assert isinstance(key, AuditKey)
    fill(store, 1)
    done = anchor_log(store, key, settings)
    assert done.written
    assert done.problems == ["webhook: cannot post the checkpoint: ConnectError"]


# -- the key file (no database) ------------------------------------------------------------


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-key.pem"
    made = AuditKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = AuditKey.load_or_create(path)
    assert again.id == made.id
    assert again.mac("a" * 64) == made.mac("a" * 64)
    assert load_public_key(path).public_bytes_raw() == made.public.public_bytes_raw()
    public = tmp_path / "public.pem"
    public.write_text(made.public_pem())
    assert load_public_key(public).public_bytes_raw() == made.public.public_bytes_raw()
    os.chmod(path, 0o644)
    with pytest.raises(InvalidSettings, match=r"readable by others \(mode 644\): run chmod 600"):
        AuditKey.load_or_create(path)


def test_bad_key_and_anchor_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("hello\n")
    with pytest.raises(UsageError, match=f"{bad}: not a PEM key"):
        load_public_key(bad)
    anchors = tmp_path / "audit-anchors.jsonl"
    anchors.write_text('{"checkpoint": {}, "signature": "x"}\nnot json\n')
    with pytest.raises(UsageError, match=f"{anchors}:1: checkpoint.format is missing"):
        read_anchors(anchors)
    anchors.write_text("\nnot json\n")
    with pytest.raises(UsageError, match=f"{anchors}:2: not JSON"):
        read_anchors(anchors)


def test_a_cancelled_release_is_anchored_at_its_end(
    engine_database_url: str, tmp_path: Path
) -> None:
    runbook = write_runbook(
        tmp_path,
        """\
        name: waits
        phases:
          - id: one
            steps:
              - {id: go, action: approval, with: {prompt: go?, timeout: 1h}}
        """,
    )
    with harness(engine_database_url, tmp_path) as h:
        release = h.start(runbook)
        h.wait_for_gate(release.id, "go")
        h.client.cancel(release.id, user="casey", reason="not today")
        [anchor] = read_anchors(h.settings.anchor_path)
        assert (anchor.checkpoint["release"], anchor.checkpoint["run"]) == (release.id, 1)
        events = h.client.store.list_events(release_id=release.id)
        [cancelled] = [e for e in events if e.kind == "release.cancelled"]
        assert anchor.size >= cancelled.seq
        check = h.client.verify_audit()
        assert (check.ok, check.anchors_checked, check.keyed) == (True, 1, True)


def test_a_log_from_before_the_upgrade_stays_valid(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 5 (no MAC column) with events in it, migrated to 6: the old events are the
    log's unkeyed first events, every new one is keyed, and the whole log verifies."""
    from shipcaptain.records import utcnow
    from shipcaptain.store import pooled
    from shipcaptain.store.audit import GENESIS_HASH, event_hash
    from shipcaptain.store.sqlfiles import load_migrations

    old = [m for m in load_migrations(backend_of(store_url)) if m.version <= 5]
    monkeypatch.setattr(pooled, "load_migrations", lambda backend: old)
    key = AuditKey.generate()
    with open_store(store_url) as store:
        assert store.migrate() == [1, 2, 3, 4, 5]
        prev = GENESIS_HASH
        for seq in (1, 2):
            fields = {
                "seq": seq,
                "at": utcnow(),
                "release_id": None,
                "step_id": None,
                "kind": "test",
                "actor": "ann",
                "message": f"before the upgrade {seq}",
                "data": {},
                "prev_hash": prev,
            }
            prev = event_hash(**fields)
            tamper_with_events(
                store_url,
                "INSERT INTO sc_events (seq, at, release_id, step_id, kind, actor, message, "
                "data, prev_hash, hash) VALUES (:seq, :at, NULL, NULL, 'test', 'ann', :message, "
                "'{}', :prev_hash, :hash)",
                seq=seq,
                at=fields["at"].isoformat(timespec="microseconds"),
                message=fields["message"],
                prev_hash=fields["prev_hash"],
                hash=prev,
            )
    monkeypatch.undo()
    with open_store(store_url) as store:
        # 6 (the MAC column) and every later migration
        later = [m.version for m in load_migrations(backend_of(store_url)) if m.version > 5]
        assert later[0] == 6
        assert store.migrate() == later
        store.use_audit_key(key)
        fill(store, 2)
        assert [e.mac is None for e in store.list_events()] == [True, True, False, False]
        settings = settings_in(tmp_path)
        assert anchor_log(store, key, settings).anchor.size == 4
        check = check_log(store, key.public, read_anchors(settings.anchor_path), key=key)
        assert (check.ok, check.events_checked, check.anchored) == (True, 4, 4)


def test_a_team_change_says_who_joined_left_or_changed(store: Store) -> None:
    from shipcaptain.records import Person

    ann = Person(name="ann", admin=True, roles={"*": ("release_captain",)})
    bob = Person(name="bob", roles={"production": ("oncall_sre",)})
    first = store.put_team([ann, bob], actor="ann", message="team", data={})
    assert first.data["changes"] == {"added": ["ann", "bob"], "removed": [], "changed": []}
    bob_sre_everywhere = Person(name="bob", roles={"*": ("oncall_sre",)})
    cy = Person(name="cy")
    second = store.put_team([bob_sre_everywhere, cy], actor="ann", message="team", data={})
    assert second.data["changes"] == {"added": ["cy"], "removed": ["ann"], "changed": ["bob"]}
    key = store.audit_key
    assert key is not None
    assert second.mac == key.mac(second.hash)
