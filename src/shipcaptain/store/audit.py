"""The hash chain of the audit log.

Each event's ``hash`` is the SHA-256 of a canonical JSON document of its fields
``seq, at, release_id, step_id, kind, actor, message, data, prev_hash``; ``prev_hash`` is
the previous event's ``hash`` (64 zeros for the first event). Changing any stored field,
or removing an event in the middle, breaks the chain at that event.

The chain is also *keyed*: each event's ``mac`` is an HMAC-SHA256 of its hash with a key
derived from the audit signing key (a file, never in the database; see
:mod:`shipcaptain.audit.keys`). Whoever can write the database but does not hold the key
cannot append an event, nor recompute the chain after an edit, without the MACs showing
it. Events written before the chain was keyed (no ``mac``) are accepted only as the
chain's first events: after one keyed event, every event must carry a valid MAC.
(docs/reference/audit-format.md is the precise form, for verifiers in other languages.)

``data`` is stored as the exact canonical JSON text that was hashed (not as ``jsonb``,
which may rewrite numbers such as ``1e300``), so verifying never fails on an intact log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from shipcaptain.records import AuditCheck, EventRecord

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def format_time(value: datetime) -> str:
    """A UTC timestamp as fixed-width ISO text (sorts the same as the times it stands for)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class EventKey(Protocol):
    """What keys the chain: a MAC of an event's hash (the audit signing key has one)."""

    def mac(self, event_hash: str) -> str:
        """The MAC an event with this hash carries (hex)."""
        ...


def event_document(
    *,
    seq: int,
    at: datetime,
    release_id: str | None,
    step_id: str | None,
    kind: str,
    actor: str,
    message: str,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    """The canonical JSON text an event's hash is the SHA-256 of."""
    document = {
        "seq": seq,
        "at": format_time(at),
        "release_id": release_id,
        "step_id": step_id,
        "kind": kind,
        "actor": actor,
        "message": message,
        "data": data,
        "prev_hash": prev_hash,
    }
    return canonical_json(document)


def event_hash(**fields: Any) -> str:
    """The hash an event with these fields (those of :func:`event_document`) must carry."""
    return hashlib.sha256(event_document(**fields).encode("utf-8")).hexdigest()


def document_of(event: EventRecord) -> str:
    """The canonical text ``event``'s hash is computed from."""
    return event_document(
        seq=event.seq,
        at=event.at,
        release_id=event.release_id,
        step_id=event.step_id,
        kind=event.kind,
        actor=event.actor,
        message=event.message,
        data=event.data,
        prev_hash=event.prev_hash,
    )


def hash_of(event: EventRecord) -> str:
    """The hash ``event`` must carry, recomputed from its other fields."""
    return hashlib.sha256(document_of(event).encode("utf-8")).hexdigest()


class ChainVerifier:
    """Checks events fed in ``seq`` order; stops at the first break.

    With ``key``, each event's MAC is checked too (events without one only before the
    first keyed event), after event ``macs_after``: the events up to it were written with
    a key since retired, and the checkpoints that key signed hold them. ``anchors`` maps a
    sequence number to the hash a signed checkpoint says the event there has, and a label
    naming that checkpoint.
    """

    def __init__(
        self,
        key: EventKey | None = None,
        anchors: dict[int, tuple[str, str]] | None = None,
        *,
        macs_after: int = 0,
    ) -> None:
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.checked = 0
        self.broken: AuditCheck | None = None
        self.key = key
        self.keyed = macs_after > 0  # a log whose key was rotated was keyed before
        self.anchors = anchors or {}
        self.macs_after = macs_after
        self.unlike_anchor = False
        """True when the break is an event unlike the one a checkpoint signed."""

    def feed(self, events: Iterable[EventRecord]) -> bool:
        """Check more events; False once the chain is broken (see :attr:`broken`)."""
        for event in events:
            problem = self._problem(event)
            if problem is not None:
                seq, reason = problem
                self.broken = AuditCheck(False, self.checked, seq, reason)
                return False
            self.checked += 1
            self.expected_seq = event.seq + 1
            self.prev_hash = event.hash
        return True

    def _problem(self, event: EventRecord) -> tuple[int, str] | None:
        """``(first broken seq, why)`` or None when ``event`` continues the chain."""
        seq = event.seq
        if seq > self.expected_seq:
            last_missing = seq - 1
            span = (
                f"{self.expected_seq}..{last_missing}" if last_missing > self.expected_seq else ""
            )
            what = f"events {span} are" if span else f"event {self.expected_seq} is"
            return self.expected_seq, f"{what} missing (the next event is {seq})"
        if seq < self.expected_seq:
            return seq, f"event {seq} is out of order (expected {self.expected_seq})"
        if event.prev_hash != self.prev_hash:
            return seq, f"event {seq} does not follow the event before it (prev_hash differs)"
        if hash_of(event) != event.hash:
            return seq, f"event {seq} was changed after it was written (its hash does not match)"
        anchored = self.anchors.get(seq)
        if anchored is not None and anchored[0] != event.hash:
            self.unlike_anchor = True
            return seq, (
                f"event {seq} is not the event {anchored[1]} signed (the chain was rewritten "
                "up to it)"
            )
        if self.key is not None and seq > self.macs_after:
            if event.mac is None:
                if self.keyed:
                    return seq, f"event {seq} carries no MAC (written without the audit key)"
            elif not hmac.compare_digest(self.key.mac(event.hash), event.mac):
                return seq, (
                    f"event {seq}'s MAC does not match the audit key (forged, or written "
                    "with another key)"
                )
            else:
                self.keyed = True
        return None

    def result(self) -> AuditCheck:
        return self.broken or AuditCheck(True, self.checked)
