"""The releases in the store: created, read, changed, and each new run.

A mixin of :class:`~shipcaptain.store.base.Store`, like the step runs, gates, people and
workers: the same named queries and transactions; each change of status appends its event
(:data:`~shipcaptain.store.status_events.StatusEvent`) in the transaction that makes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime

from shipcaptain.errors import NotFound
from shipcaptain.records import (
    RELEASE_STATUSES,
    ReleaseFilter,
    ReleaseRecord,
    ReleaseStatus,
)
from shipcaptain.store import rows
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection
from shipcaptain.store.status_events import StatusEvent


class ReleaseStore(StoreCore):
    """The release methods of the store."""

    def create_release(
        self,
        release: ReleaseRecord,
        *,
        event: StatusEvent | None = None,
        outline: str | None = None,
    ) -> ReleaseRecord:
        """Store a new release; creating the same id again returns the stored one unchanged.
        ``event`` is appended in the same transaction (before: None; after: its status)
        when this call created it. ``outline``: its runbook's outline as JSON text
        (``shipcaptain.runbook.outline.outline_json``), what :meth:`release_outline` gives."""
        with self._transaction("creating a release", write=True) as conn:
            existed = self._one(conn, "get_release", id=release.id) is not None
            self._run(conn, "insert_release", **rows.release_params(release, outline))
            stored = self._get_release(conn, release.id)
            if event is not None and not existed:
                self._status_event(conn, release.id, None, event, None, stored.status)
            return stored

    def _get_release(self, conn: Connection, release_id: str) -> ReleaseRecord:
        row = self._one(conn, "get_release", id=release_id)
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        return rows.release_from_row(row)

    def get_release(self, release_id: str) -> ReleaseRecord:
        """The release ``release_id``; :class:`NotFound` if there is none."""
        with self._transaction("reading a release") as conn:
            return self._get_release(conn, release_id)

    def release_outline(self, release_id: str) -> str | None:
        """The outline recorded with the release when it was created (JSON text), or None
        (a release created before outlines were recorded, or without one);
        :class:`NotFound` if there is no such release."""
        with self._transaction("reading a release's outline") as conn:
            row = self._one(conn, "get_release_outline", id=release_id)
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        outline = row["outline"]
        return None if outline is None else str(outline)

    def list_releases(self, which: ReleaseFilter | None = None) -> list[ReleaseRecord]:
        """The releases ``which`` lets through, newest first (None: the newest 50)."""
        which = which or ReleaseFilter()
        with self._transaction("listing releases") as conn:
            found = self._all(conn, "list_releases", **dataclasses.asdict(which))
        return [rows.release_from_row(row) for row in found]

    def live_releases(
        self, *, environment: str | None = None, runbook: str | None = None
    ) -> list[ReleaseRecord]:
        """What is live: of each runbook (its name) in each environment, the newest release
        that succeeded, by environment then runbook; optionally of one environment and/or
        runbook. Every environment and runbook is answered, however many releases there are."""
        with self._transaction("listing what is live") as conn:
            found = self._all(conn, "live_releases", environment=environment, runbook=runbook)
        return [rows.release_from_row(row) for row in found]

    def active_releases(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[ReleaseRecord]:
        """Every release not finished (pending, running, waiting, failing, rolling back),
        newest first, optionally of one environment, runbook and/or starter."""
        with self._transaction("listing active releases") as conn:
            found = self._all(
                conn,
                "active_releases",
                environment=environment,
                runbook=runbook,
                started_by=started_by,
            )
        return [rows.release_from_row(row) for row in found]

    def update_release(
        self,
        release_id: str,
        *,
        status: ReleaseStatus | None = None,
        run: int | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        reason: str | None = None,
        executor_id: str | None = None,
        event: StatusEvent | None = None,
        only_from: Collection[str] | None = None,
    ) -> ReleaseRecord:
        """Change the given fields of a release (None leaves a field as it is).

        ``event`` is appended in the same transaction with the release's status ``before``
        and ``after`` the change. With ``only_from``, nothing happens (no change, no event)
        unless the release's status is one of those; the release as it is is returned.
        """
        if status is not None and status not in RELEASE_STATUSES:
            raise ValueError(f"unknown release status {status!r}")
        with self._transaction("updating a release", write=True) as conn:
            before = self._get_release(conn, release_id)
            if only_from is not None and before.status not in only_from:
                return before
            self._run(
                conn,
                "update_release",
                id=release_id,
                status=status,
                run=run,
                started_at=rows.time_param(started_at),
                ended_at=rows.time_param(ended_at),
                reason=reason,
                executor_id=executor_id,
            )
            after = self._get_release(conn, release_id)
            if event is not None:
                self._status_event(conn, release_id, None, event, before.status, after.status)
            return after

    def begin_run(
        self,
        release_id: str,
        run: int,
        *,
        status: ReleaseStatus | None = None,
        reason: str | None = None,
        event: StatusEvent | None = None,
    ) -> ReleaseRecord:
        """Start run ``run`` of a release (resume): pending (or ``status``), with end and
        reason cleared (or ``reason``), run by no process until one starts it (so no worker
        takes it over from the gone process of the run before); an environment lock the
        release held or asked for is given back (the new run asks again, from the back of
        the queue). ``event`` is appended in the same transaction, with the status before
        and after."""
        with self._transaction("starting a new run", write=True) as conn:
            before = self._get_release(conn, release_id)
            self._run(conn, "begin_run", id=release_id, run=run)
            if status is not None or reason is not None:
                self._run(
                    conn, "update_release", id=release_id, status=status, run=None,
                    started_at=None, ended_at=None, reason=reason, executor_id=None,
                )  # fmt: skip
            self._run(conn, "drop_env_locks_of", release_id=release_id)
            after = self._get_release(conn, release_id)
            if event is not None:
                self._status_event(conn, release_id, None, event, before.status, after.status)
            return after
