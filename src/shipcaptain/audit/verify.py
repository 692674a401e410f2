"""Verifying the audit log: in the state database against the anchors, or an evidence
bundle with only the anchor file and the public key.

What each check catches:

- an event edited in place: its hash no longer matches (or the next link breaks);
- an event edited and the chain recomputed from there: its MAC no longer matches the key,
  and the hash a signed checkpoint holds for an event at or after it differs;
- a forged event appended: no valid MAC (the forger has no key);
- events removed from the tail: a checkpoint covers more events than the log holds;
- the whole log deleted or replaced: a checkpoint covers events the log does not have, or
  names another first event.

The first problem in the log's order is reported: the event's number (``broken_seq``)
and/or the anchor's line (``broken_anchor``), with a sentence saying what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipcaptain.audit.anchors import Anchor, checkpoint_message
from shipcaptain.audit.keys import key_id, verify_signature
from shipcaptain.records import AuditCheck
from shipcaptain.store.audit import GENESIS_HASH, ChainVerifier, EventKey

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from shipcaptain.records import EventRecord
    from shipcaptain.store import Store


def _bad_anchor(anchor: Anchor, reason: str, seq: int | None = None) -> AuditCheck:
    return AuditCheck(False, 0, seq, reason, broken_anchor=anchor.line or None)


@dataclass
class KeyRing:
    """The keys the anchor file's checkpoints may be signed with, learnt from the one key
    the verifier trusts (the current audit key's public half), going back through the key
    rotations: a rotation checkpoint, signed by the new key, names the key it replaced
    (``previous_key``, PEM) and the size of the log when it was retired. Events up to the
    newest rotation (``retired_through``) are held by the signed checkpoints of their keys;
    events after it carry MACs of the current key."""

    keys: dict[str, Ed25519PublicKey]
    retired_at: dict[str, int] = field(default_factory=dict)
    retired_through: int = 0


def key_ring(anchors: list[Anchor], public: Ed25519PublicKey) -> KeyRing | AuditCheck:
    """The key ring of ``anchors`` trusting ``public``, or the first rotation checkpoint
    that does not check out, as a failed check."""
    from shipcaptain.audit.keys import load_public_pem

    ring = KeyRing({key_id(public): public})
    for anchor in reversed(anchors):
        previous = anchor.checkpoint.get("previous_key")
        signer = ring.keys.get(str(anchor.checkpoint.get("key_id")))
        if previous is None or signer is None:
            continue
        if not verify_signature(signer, checkpoint_message(anchor.checkpoint), anchor.signature):
            return _bad_anchor(anchor, f"{anchor.label} is not signed by the key it names")
        try:
            old = load_public_pem(str(previous))
        except ValueError as exc:
            return _bad_anchor(anchor, f"{anchor.label}: its previous_key is not a key: {exc}")
        named = anchor.checkpoint.get("previous_key_id")
        if key_id(old) != named:
            return _bad_anchor(anchor, f"{anchor.label}: its previous_key is not key {named}")
        ring.keys.setdefault(key_id(old), old)
        ring.retired_at.setdefault(key_id(old), anchor.size)
        ring.retired_through = max(ring.retired_through, anchor.size)
    return ring


@dataclass
class Verified:
    """How many of an anchor file's first anchors this process found signed, and with
    which key ring: what makes those signatures valid (the ring's keys, raw, under their
    ids, and the sizes its retired keys were retired at). Its owner vouches that the
    anchors it is given next begin with those same anchors (the same bytes of the file),
    so that only the ones after them are verified, while the ring is the same; another
    ring verifies them all again. Only the anchorer keeps one (once per process, then
    the lines added since); ``audit verify`` verifies every anchor. Of those anchors, it
    also keeps what :func:`check_log` reads of each: the rotation checkpoints among them,
    the logs they name and the newest."""

    count: int = 0
    ring: tuple[object, ...] = ()
    rotations: list[Anchor] = field(default_factory=list)
    logs: set[str] = field(default_factory=set)
    newest: Anchor | None = None

    def rotations_in(self, anchors: list[Anchor]) -> list[Anchor]:
        """The rotation checkpoints of ``anchors`` (which begin with its anchors), in order."""
        if self.count > len(anchors):  # not the anchors it counted: all of them
            return [a for a in anchors if _is_rotation(a)]
        added = anchors[self.count :]
        return self.rotations + [a for a in added if _is_rotation(a)]

    def add(self, anchors: Iterable[Anchor]) -> None:
        for anchor in anchors:
            if _is_rotation(anchor):
                self.rotations.append(anchor)
            self.logs.add(anchor.log)
            if self.newest is None or anchor.size > self.newest.size:
                self.newest = anchor


def _is_rotation(anchor: Anchor) -> bool:
    return anchor.checkpoint.get("previous_key") is not None


def _ring_identity(ring: KeyRing) -> tuple[object, ...]:
    from cryptography.hazmat.primitives import serialization

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    keys = tuple((name, key.public_bytes(*raw)) for name, key in ring.keys.items())
    return keys, tuple(sorted(ring.retired_at.items())), ring.retired_through


def check_signatures(
    anchors: list[Anchor],
    public: Ed25519PublicKey | KeyRing,
    *,
    verified: Verified | None = None,
) -> AuditCheck | None:
    """The first anchor not signed by ``public`` (or by a key it took over from, in its
    time), as a failed check; None when all are. With ``verified``, the anchors it counts
    as verified with this same key ring are not verified again, and it counts the rest
    once they are."""
    ring = key_ring(anchors, public) if not isinstance(public, KeyRing) else public
    if isinstance(ring, AuditCheck):
        return ring
    current = next(iter(ring.keys))
    identity = _ring_identity(ring) if verified is not None else ()
    start = 0
    if verified is not None and verified.ring == identity and verified.count <= len(anchors):
        start = verified.count
    for anchor in anchors[start:]:
        named = str(anchor.checkpoint.get("key_id"))
        signer = ring.keys.get(named, ring.keys[current])
        message = checkpoint_message(anchor.checkpoint)
        if named not in ring.keys or not verify_signature(signer, message, anchor.signature):
            hint = f" (it names key {named}, this key is {current})" if named != current else ""
            if named != current and ring.retired_at:
                hint += "; no rotation checkpoint of this key names that key"
            return _bad_anchor(anchor, f"{anchor.label} is not signed by this key{hint}")
        retired = ring.retired_at.get(named)
        if retired is not None and anchor.size > retired:
            return _bad_anchor(
                anchor,
                f"{anchor.label} is signed by key {named}, which was retired at event "
                f"{retired}: a retired key signs nothing after its retirement",
            )
    if verified is not None:
        if start == 0:
            verified.rotations, verified.logs, verified.newest = [], set(), None
        verified.add(anchors[start:])
        verified.count, verified.ring = len(anchors), identity
    return None


def check_log(
    store: Store,
    public: Ed25519PublicKey,
    anchors: list[Anchor],
    *,
    key: EventKey | None = None,
    since_anchor: bool = False,
    verified: Verified | None = None,
    ends: tuple[EventRecord | None, EventRecord | None] | None = None,
) -> AuditCheck:
    """Verify the store's audit log against ``anchors`` (signed by ``public``), and each
    event's MAC with ``key``. ``since_anchor``: only the events after the newest anchor
    (what the anchorer checks before it signs the next one). ``verified``: the anchors'
    signatures this process verified already (see :class:`Verified`). ``ends``: the log's
    first and newest events as the caller read them just before (the log only grows:
    every event up to that newest one is checked), else read here."""
    ring = key_ring(anchors if verified is None else verified.rotations_in(anchors), public)
    if isinstance(ring, AuditCheck):
        return ring
    bad = check_signatures(anchors, ring, verified=verified)
    if bad is not None:
        return bad
    first, last = ends if ends is not None else (store.get_event(1), store.last_event())
    same_log = verified is not None and first is not None and verified.logs <= {first.hash}
    for anchor in [] if same_log else anchors:
        if first is None:
            return _bad_anchor(
                anchor,
                f"the audit log is empty, but {anchor.label} covers {anchor.size} events: "
                "the log was deleted",
                1,
            )
        if anchor.log != first.hash:
            return _bad_anchor(
                anchor,
                f"{anchor.label} is of an audit log whose first event has hash "
                f"{anchor.log[:16]}…, this one's is {first.hash[:16]}…: the log was replaced",
                1,
            )
    if verified is not None:
        newest = verified.newest
    else:
        newest = max(anchors, key=lambda a: a.size, default=None)
    if newest is not None and last is not None and last.seq < newest.size:
        span = f"{last.seq + 1}..{newest.size}" if newest.size > last.seq + 1 else last.seq + 1
        return _bad_anchor(
            newest,
            f"the log ends at event {last.seq}, but {newest.label} covers {newest.size} "
            f"events: event(s) {span} were removed",
            last.seq + 1,
        )
    # since the newest anchor, only the events after it: no anchor covers them
    since = since_anchor and newest is not None
    expected = {} if since else {a.size: (a.head, a.label) for a in anchors}
    verifier = ChainVerifier(key, expected, macs_after=ring.retired_through)
    if since and newest is not None:
        at = store.get_event(newest.size)
        if at is None or at.hash != newest.head:
            return _bad_anchor(
                newest,
                f"event {newest.size} is not the event {newest.label} signed (the chain was "
                "rewritten up to it)",
                newest.size,
            )
        verifier.expected_seq, verifier.prev_hash = newest.size + 1, newest.head
        verifier.keyed = at.mac is not None
    check = store.verify_events(start=verifier)
    line = None
    if verifier.unlike_anchor:
        line = next((a.line for a in anchors if a.size == check.broken_seq), None)
    return dataclasses.replace(
        check,
        anchors_checked=len(anchors),
        anchored=newest.size if newest else 0,
        broken_anchor=line or None,
        keyed=key is not None,
    )


# ---- the evidence bundle, without a database -------------------------------------------


def _event_fields(entry: dict[str, Any], where: str) -> tuple[int, str, dict[str, Any]]:
    try:
        seq, digest, document = int(entry["seq"]), str(entry["hash"]), str(entry["document"])
        fields = json.loads(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not an event (seq, hash, document): {exc}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: its document is not a JSON object")
    return seq, digest, fields


def check_bundle_chain(
    bundle: dict[str, Any], anchors: list[Anchor], public: Ed25519PublicKey
) -> AuditCheck:
    """The bundle's stretch of the chain, its checkpoint, and the anchor file: the
    cryptographic part of :func:`verify_bundle`."""
    from shipcaptain.audit.anchors import parse_anchor

    chain = bundle.get("chain")
    if not isinstance(chain, dict) or not isinstance(chain.get("events"), list):
        return AuditCheck(False, 0, None, "the bundle has no chain (made before bundle_version 2)")
    try:
        own = parse_anchor(chain.get("anchor"), "the bundle's chain.anchor", 0)
    except ValueError as exc:
        return AuditCheck(False, 0, None, str(exc))
    bad = check_signatures([own, *anchors], public)
    if bad is not None:
        return bad
    if not any(a.document() == own.document() for a in anchors):
        return AuditCheck(
            False,
            0,
            None,
            f"the bundle's checkpoint ({own.size} events, {own.checkpoint['at']}) is not in "
            "the anchor file",
        )
    by_size = {a.size: a for a in anchors if a.log == own.log}
    prev: str | None = None
    expected_seq: int | None = None
    checked = 0
    for index, entry in enumerate(chain["events"]):
        try:
            seq, digest, fields = _event_fields(entry, f"chain.events[{index}]")
        except ValueError as exc:
            return AuditCheck(False, checked, None, str(exc))
        if expected_seq is not None and seq != expected_seq:
            return AuditCheck(
                False, checked, expected_seq, f"event {expected_seq} is missing from the bundle"
            )
        if fields.get("seq") != seq:
            return AuditCheck(False, checked, seq, f"event {seq}'s document says another seq")
        if seq == 1 and fields.get("prev_hash") != GENESIS_HASH:
            return AuditCheck(False, checked, seq, "event 1 does not start the chain")
        if prev is not None and fields.get("prev_hash") != prev:
            return AuditCheck(
                False, checked, seq, f"event {seq} does not follow the event before it"
            )
        if hashlib.sha256(entry["document"].encode("utf-8")).hexdigest() != digest:
            return AuditCheck(
                False, checked, seq, f"event {seq} was changed (its hash does not match)"
            )
        if seq == 1 and digest != own.log:
            return AuditCheck(False, checked, seq, "event 1 is not the first event signed")
        anchored = by_size.get(seq)
        if anchored is not None and anchored.head != digest:
            return AuditCheck(
                False,
                checked,
                seq,
                f"event {seq} is not the event {anchored.label} signed",
                broken_anchor=anchored.line or None,
            )
        prev, expected_seq, checked = digest, seq + 1, checked + 1
    if prev != own.head or expected_seq != own.size + 1:
        return AuditCheck(
            False,
            checked,
            expected_seq,
            f"the bundle's chain does not end at the event its checkpoint signed "
            f"(event {own.size})",
        )
    return AuditCheck(True, checked, anchors_checked=len(anchors), anchored=own.size)


def verify_bundle(
    bundle: dict[str, Any], anchors: list[Anchor], public: Ed25519PublicKey
) -> AuditCheck:
    """Verify an evidence bundle with only the anchor file and the public key: its chain
    (each event's hash, the links, the signed checkpoint, which must be in the anchor
    file) and that every section of the bundle is what its chain's events say."""
    from shipcaptain.evidence import derive_sections

    check = check_bundle_chain(bundle, anchors, public)
    if not check.ok:
        return check
    events = [{**json.loads(e["document"]), "hash": e["hash"]} for e in bundle["chain"]["events"]]
    expected = derive_sections(bundle["release"]["id"], events)
    for name, value in expected.items():
        if bundle.get(name) != value:
            return dataclasses.replace(
                check,
                ok=False,
                reason=f"the bundle's {name} is not what its audit events record (edited "
                "after export, or not made from the chain)",
            )
    return check
