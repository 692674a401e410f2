"""Rotating the audit key, on both databases: the retired key signs its last checkpoint,
the new key a rotation checkpoint naming it, and from then on a verifier that holds only
the new key checks the whole log; the retired key can neither sign nor write after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.databases import tamper_with_events
from shipcaptain.audit.anchors import anchor_log, read_anchors, rotate_key, sign_checkpoint
from shipcaptain.audit.keys import AuditKey
from shipcaptain.audit.verify import check_log
from shipcaptain.errors import InvalidState
from shipcaptain.settings import Settings
from shipcaptain.store import Store


def fill(store: Store, count: int) -> None:
    for n in range(count):
        store.append_event("rel-1", None, "test", "ann", f"event {n}")


@pytest.fixture
def rotated(store: Store, tmp_path: Path) -> tuple[Store, Settings, AuditKey, AuditKey]:
    """A log of 5 events under key A (anchored at 3), rotated to key B, then 2 more
    events under B: 7 events."""
    old = store.audit_key
    assert isinstance(old, AuditKey)
    settings = Settings(data_dir=tmp_path / "data")
    fill(store, 3)
    anchor_log(store, old, settings)
    fill(store, 2)  # not anchored before the rotation: the old key's last checkpoint holds them
    new = AuditKey.generate()
    done = rotate_key(store, old, new, settings)
    assert [(a.anchor.size, a.anchor.checkpoint["key_id"]) for a in done] == [
        (5, old.id),
        (5, new.id),
    ]
    assert done[1].anchor.checkpoint["previous_key_id"] == old.id
    store.use_audit_key(new)
    fill(store, 2)
    return store, settings, old, new


def test_after_a_rotation_the_new_key_alone_checks_the_whole_log(
    rotated: tuple[Store, Settings, AuditKey, AuditKey],
) -> None:
    store, settings, old, new = rotated
    anchors = read_anchors(settings.anchor_path)
    check = check_log(store, new.public, anchors, key=new)
    assert (check.ok, check.events_checked, check.anchors_checked) == (True, 7, 3), check
    # the anchorer, which verifies the log since the newest anchor, signs with the new key
    later = anchor_log(store, new, settings)
    assert later.written
    assert later.anchor.checkpoint["key_id"] == new.id
    check = check_log(store, new.public, read_anchors(settings.anchor_path), key=new)
    assert (check.ok, check.anchored) == (True, 7), check
    # the retired key no longer verifies the log: it does not know its successor
    stale = check_log(store, old.public, read_anchors(settings.anchor_path), key=old)
    assert not stale.ok
    assert f"is not signed by this key (it names key {new.id}" in str(stale.reason)


def test_an_event_from_before_the_rotation_rewritten_is_found(
    rotated: tuple[Store, Settings, AuditKey, AuditKey], store_url: str
) -> None:
    store, settings, _, new = rotated
    tamper_with_events(store_url, "UPDATE sc_events SET actor = 'mallory' WHERE seq = 4")
    check = check_log(store, new.public, read_anchors(settings.anchor_path), key=new)
    assert (check.ok, check.broken_seq) == (False, 4), check
    assert "was changed after it was written" in str(check.reason)


def test_the_retired_key_can_no_longer_write_or_sign(
    rotated: tuple[Store, Settings, AuditKey, AuditKey],
) -> None:
    store, settings, old, new = rotated
    # an event appended with the retired key (it leaked): its MAC is not the new key's
    store.use_audit_key(old)
    fill(store, 1)
    check = check_log(store, new.public, read_anchors(settings.anchor_path), key=new)
    assert (check.ok, check.broken_seq) == (False, 8), check
    assert "MAC does not match the audit key" in str(check.reason)
    # a checkpoint the retired key signs after its retirement is refused
    events = store.list_events()
    late = sign_checkpoint(
        old, log=events[0].hash, size=7, head=events[6].hash, release=None, run=None
    )
    with settings.anchor_path.open("a", encoding="utf-8") as out:
        out.write(late.to_line() + "\n")
    check = check_log(store, new.public, read_anchors(settings.anchor_path), key=new)
    assert (check.ok, check.broken_anchor) == (False, 4), check
    assert f"signed by key {old.id}, which was retired at event 5" in str(check.reason)


def test_a_rotation_checkpoint_by_a_key_nobody_vouches_for_counts_for_nothing(
    store: Store, tmp_path: Path
) -> None:
    """Whoever can write the anchor file cannot bring in a key of their own by writing a
    rotation checkpoint: only one signed by a key the verifier already trusts counts."""
    key = store.audit_key
    assert isinstance(key, AuditKey)
    settings = Settings(data_dir=tmp_path / "data")
    fill(store, 2)
    forger, theirs = AuditKey.generate(), AuditKey.generate()
    events = store.list_events()
    signed_by_theirs = sign_checkpoint(
        theirs, log=events[0].hash, size=2, head=events[1].hash, release=None, run=None
    )
    vouching = sign_checkpoint(
        forger,
        log=events[0].hash,
        size=2,
        head=events[1].hash,
        release=None,
        run=None,
        previous=theirs,
    )
    settings.anchor_path.parent.mkdir(parents=True)
    settings.anchor_path.write_text(signed_by_theirs.to_line() + "\n" + vouching.to_line() + "\n")
    check = check_log(store, key.public, read_anchors(settings.anchor_path), key=key)
    assert (check.ok, check.broken_anchor) == (False, 1), check
    assert f"it names key {theirs.id}, this key is {key.id}" in str(check.reason)


def test_rotating_with_a_key_that_did_not_sign_the_log_is_refused(
    store: Store, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    fill(store, 2)
    stranger = AuditKey.generate()
    with pytest.raises(InvalidState, match=f"does not verify with the previous key {stranger.id}"):
        rotate_key(store, stranger, AuditKey.generate(), settings)
    assert read_anchors(settings.anchor_path) == []
