"""The audit log's part of the store: appending to the keyed hash chain, reading it and
verifying it (see :mod:`shipcaptain.store.audit` for the chain itself).

The store holds no key: whoever opens it hands it one with :meth:`AuditLogStore.use_audit_key`
(the CLI, the server and the workers load it from ``SHIPCAPTAIN_AUDIT_KEY_FILE``). A store
without a key appends events without a MAC, which verifying with the key reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from shipcaptain.records import AuditCheck, EventRecord, utcnow
from shipcaptain.redact import scrub, scrub_value
from shipcaptain.store import rows
from shipcaptain.store.audit import (
    GENESIS_HASH,
    ChainVerifier,
    EventKey,
    canonical_json,
    event_hash,
)
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection

_VERIFY_PAGE = 1000


class AuditLogStore(StoreCore):
    """The audit log methods of the store."""

    _audit_key: EventKey | None = None
    _audit_key_source: Callable[[], EventKey] | None = None

    def use_audit_key(self, key: EventKey | Callable[[], EventKey]) -> None:
        """Key the events this store appends: a key, or how to load one on first use."""
        if callable(key):
            self._audit_key, self._audit_key_source = None, key
        else:
            self._audit_key, self._audit_key_source = key, None

    @property
    def audit_key(self) -> EventKey | None:
        """The key events are appended with (loaded now if it was given as a loader)."""
        if self._audit_key is None and self._audit_key_source is not None:
            self._audit_key = self._audit_key_source()
        return self._audit_key

    def append_event(
        self,
        release_id: str | None,
        step_id: str | None,
        kind: str,
        actor: str,
        message: str,
        *,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Append an event to the hash-chained audit log; the event as stored.

        Appends from many threads and processes form one gapless chain: each takes the
        chain's lock for its transaction. ``data`` must be JSON (no NaN or infinity).
        """
        with self._transaction("appending to the audit log", write=True) as conn:
            return self._append_event(conn, release_id, step_id, kind, actor, message, data)

    def append_event_once(
        self,
        release_id: str,
        step_id: str | None,
        kind: str,
        actor: str,
        message: str,
        *,
        once: str,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Append an event unless the release already has one of ``kind`` with the same
        ``once`` key (kept in its data): True when appended now. For a note written by a
        durable step that runs again when its process died before the step's checkpoint
        (the key names the step: its workflow and its place there), so a replay does not
        show the note twice. Checked under the audit chain's lock."""
        with self._transaction("appending to the audit log", write=True) as conn:
            self._lock(conn, "audit")
            for row in self._all(conn, "events_of_kind", kind=kind, release_id=release_id):
                if rows.event_from_row(row).data.get("once") == once:
                    return False
            self._append_event(
                conn, release_id, step_id, kind, actor, message, {**(data or {}), "once": once}
            )
        return True

    def _append_event(
        self,
        conn: Connection,
        release_id: str | None,
        step_id: str | None,
        kind: str,
        actor: str,
        message: str,
        data: dict[str, Any] | None,
        *,
        locked: bool = False,
        head: tuple[int, str] | None = None,
    ) -> EventRecord:
        """``locked``: this transaction holds the chain's lock already (taken by one of its
        earlier statements, see ``_audit_lock_params``); ``head``: and it read the chain's
        head (``seq``, ``hash``; ``(0, GENESIS_HASH)`` for an empty log) after it."""
        payload = json.loads(canonical_json(scrub_value(data or {})))  # as it will read back
        message = scrub(message)
        key = self.audit_key  # before the lock: loading it may create the key file
        if head is None:
            if not locked:
                self._lock(conn, "audit")
            last = self._one(conn, "last_event")
            head = (0, GENESIS_HASH) if last is None else (int(last["seq"]), str(last["hash"]))
        seq, prev_hash = head[0] + 1, head[1]
        fields: dict[str, Any] = {
            "seq": seq,
            "at": utcnow(),
            "release_id": release_id,
            "step_id": step_id,
            "kind": kind,
            "actor": actor,
            "message": message,
            "data": payload,
            "prev_hash": prev_hash,
        }
        digest = event_hash(**fields)
        mac = None if key is None else key.mac(digest)
        event = EventRecord(**fields, hash=digest, mac=mac)
        self._run(conn, "insert_event", **rows.event_params(event))
        return event

    def list_events(
        self, release_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events with ``seq`` above ``after_seq``, in order, optionally of one release."""
        with self._transaction("reading the audit log") as conn:
            found = self._all(
                conn, "list_events", release_id=release_id, after_seq=after_seq, limit=limit
            )
        return [rows.event_from_row(row) for row in found]

    def get_event(self, seq: int) -> EventRecord | None:
        """The event ``seq``, or None when the log has none."""
        with self._transaction("reading the audit log") as conn:
            row = self._one(conn, "get_event", seq=seq)
        return None if row is None else rows.event_from_row(row)

    def last_event(self) -> EventRecord | None:
        """The newest event (the chain's head), or None for an empty log."""
        with self._transaction("reading the audit log") as conn:
            last = self._one(conn, "last_event")
            row = None if last is None else self._one(conn, "get_event", seq=last["seq"])
        return None if row is None else rows.event_from_row(row)

    def release_event_span(self, release_id: str) -> tuple[int, int] | None:
        """The first and last ``seq`` of a release's events, or None when it has none."""
        with self._transaction("reading the audit log") as conn:
            row = self._one(conn, "release_event_span", release_id=release_id)
        if row is None or row["first_seq"] is None:
            return None
        return int(row["first_seq"]), int(row["last_seq"])

    def events_between(self, first_seq: int, last_seq: int) -> Iterator[EventRecord]:
        """Every event from ``first_seq`` to ``last_seq`` (both included), a page at a time."""
        after = first_seq - 1
        while after < last_seq:
            with self._transaction("reading the audit log") as conn:
                found = self._all(
                    conn,
                    "events_between",
                    first_seq=after + 1,
                    last_seq=min(last_seq, after + _VERIFY_PAGE),
                )
            if not found:
                return
            for row in found:
                yield rows.event_from_row(row)
            after = min(last_seq, after + _VERIFY_PAGE)

    def verify_events(
        self,
        *,
        key: EventKey | None = None,
        anchors: dict[int, tuple[str, str]] | None = None,
        start: ChainVerifier | None = None,
    ) -> AuditCheck:
        """Check the whole audit chain: a changed event or a missing one is reported; with
        ``key``, each event's MAC; with ``anchors`` (seq: (hash, label)), the hashes signed
        checkpoints fixed."""
        verifier = start or ChainVerifier(key, anchors)
        after = verifier.expected_seq - 1
        while True:
            page = self.list_events(after_seq=after, limit=_VERIFY_PAGE)
            if not page or not verifier.feed(page):
                return verifier.result()
            after = page[-1].seq
