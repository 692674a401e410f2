"""What the stores of the commands that only read share (:mod:`shipcaptain.store.reader`):
they never write, and they check the schema's versions before they are taken."""

from __future__ import annotations

import threading
from typing import Any, Self

from shipcaptain.errors import StoreError
from shipcaptain.store.base import Store
from shipcaptain.store.sqlfiles import migration_versions


class ReadOnlyStore(Store):
    """What both readers share: one connection of the driver (made when first used, by
    ``_connection``), guarded; they never write, and they read the schema's versions."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._conn: Any = None
        self._guard = threading.RLock()

    def close(self) -> None:
        with self._guard:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _refuse_write(self, doing: str) -> StoreError:
        return StoreError(
            f"state database {self.url} was opened for reading only: cannot go on {doing}"
        )

    def applied_versions(self) -> set[int]:
        """The migrations applied to the database (none when it was never migrated)."""
        with self._transaction("reading the schema version") as conn:
            if self._one(conn, "has_schema_version_table") is None:
                return set()
            return {row["version"] for row in self._all(conn, "list_schema_versions")}

    def schema_version(self) -> int:
        return max(self.applied_versions(), default=0)

    def pending_versions(self) -> list[int]:
        """The migrations this shipcaptain knows that the database lacks; StoreError for a
        database of a newer shipcaptain (as migrating it says)."""
        applied = self.applied_versions()
        known = migration_versions(self.backend)
        self._newer_schema(applied, max(known, default=0))
        return sorted(known - applied)

    def migrate(self) -> list[int]:
        """Nothing to apply (``open_reader`` opened it current); StoreError if that changed."""
        pending = self.pending_versions()
        if pending:
            raise StoreError(
                f"the state database {self.url} needs migrations {pending}, and this command "
                "only reads it: run a command that writes (or `shipcaptain worker`) first"
            )
        return []

    def current_or_none(self, driver_error: type[BaseException]) -> Self | None:
        """This reader when the schema is current; None (closed) when migrations are
        pending or the database cannot be read (``driver_error``: the ordinary way says
        what is wrong with it); StoreError for a database of a newer shipcaptain."""
        try:
            pending = self.pending_versions()
        except StoreError as exc:
            self.close()
            if isinstance(exc.__cause__, driver_error):
                return None
            raise
        if pending:
            self.close()
            return None
        return self
