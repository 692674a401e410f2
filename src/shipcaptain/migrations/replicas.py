"""Is every read replica streaming and caught up? Lag in bytes is the primary's current WAL
position minus the replica's replay position; lag in seconds is how old the last replayed
transaction is while the replica is behind (0 once it has replayed everything it received)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class ReplicaHealth:
    url_name: str
    problem: str | None
    lag_bytes: int = 0
    lag_seconds: float = 0.0


def check_replica(
    primary: psycopg.Connection, name: str, url: str, max_bytes: int, max_seconds: float
) -> ReplicaHealth:
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as rep:
            row = rep.execute(
                "SELECT pg_is_in_recovery(), pg_is_wal_replay_paused(), "
                "pg_last_wal_replay_lsn()::text, "
                "(SELECT status FROM pg_stat_wal_receiver LIMIT 1), "
                "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                "ELSE COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) "
                "END"
            ).fetchone()
    except psycopg.Error as exc:
        return ReplicaHealth(name, f"cannot connect: {str(exc).strip()}")
    assert row is not None
    in_recovery, paused, replay_lsn, status, lag_s = row
    if not in_recovery:
        return ReplicaHealth(name, "is not a replica (not in recovery)")
    if status != "streaming":
        return ReplicaHealth(name, f"is not streaming (WAL receiver: {status or 'none'})")
    lag_b_row = primary.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", (replay_lsn,)
    ).fetchone()
    lag_b = int(lag_b_row[0] or 0) if lag_b_row else 0
    lag_sec = float(lag_s or 0)
    if paused:
        return ReplicaHealth(name, "WAL replay is paused (pg_wal_replay_pause)", lag_b, lag_sec)
    if lag_b > max_bytes:
        return ReplicaHealth(name, f"replay lag {lag_b} bytes > {max_bytes}", lag_b, lag_sec)
    if lag_sec > max_seconds:
        return ReplicaHealth(name, f"replay lag {lag_sec:.1f} s > {max_seconds}", lag_b, lag_sec)
    return ReplicaHealth(name, None, lag_b, lag_sec)
