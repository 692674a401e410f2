"""The cost of proof: audit events appended per second, ``audit verify`` on a long log, and
the token check every CLI call makes.

For each backend (SQLite file; PostgreSQL when its server answers):

* **append**: ``Store.append_event`` called N times one after the other (each its own
  transaction with the chain's lock, as the engine and the CLI append; each event keyed
  with its HMAC), then from 4 threads at once (contention on the chain's lock): events
  per second;
* **verify**: the log filled to 10,000 and then 100,000 events (a valid keyed chain,
  written in bulk transactions so that filling is quick; the events are shaped like the
  engine's), then what ``shipcaptain audit verify`` runs timed: every hash, link and MAC,
  and the signed checkpoints of the anchor file;
* **anchor**: signing a checkpoint as the engine does at a release's end, after 100 new
  events (it verifies the log since the previous checkpoint, signs, appends to the file);
* **per-event signatures** (the road not taken): what Ed25519 would cost per event
  instead of an HMAC, to sign on append and to verify 100,000 events;
* **token check**: what the CLI does once per call before a command that needs a person:
  ``identity.authenticate`` (hash the token, find it, check its state and its person),
  then ``authorize`` of one action (the team's permissions read from the store); ms each.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/audit.py                        # SQLite and PostgreSQL
    python benchmarks/audit.py --backend sqlite --sizes 10000

PostgreSQL: a throwaway database on the server of ``SHIPCAPTAIN_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``), dropped afterwards.

Targets: ``audit verify`` of 100,000 events under 10 s (a nightly job, not an interactive
wait); the token check under 5 ms per CLI call (the CLI starts in ~100+ ms anyway).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_team import bench_token, put_bench_team
from step_overhead import postgres_database, postgres_unreachable

from shipcaptain.audit.anchors import anchor_log, read_anchors
from shipcaptain.audit.keys import AuditKey
from shipcaptain.audit.verify import check_log
from shipcaptain.identity import authenticate
from shipcaptain.permissions import authorize, policy_of
from shipcaptain.records import EventRecord, utcnow
from shipcaptain.settings import Settings
from shipcaptain.store import Store, open_store, rows
from shipcaptain.store.audit import GENESIS_HASH, event_hash

VERIFY_TARGET_S = 10.0
TOKEN_TARGET_MS = 5.0


@contextlib.contextmanager
def backend_url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sc-audit-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'state.db'}"
    else:
        with postgres_database() as url:
            yield url


def engine_like(i: int) -> dict[str, Any]:
    """An event shaped like the engine's step events (the common case in a real log)."""
    return {
        "release_id": f"rel-{i // 40:016x}",
        "step_id": f"step_{i % 40}",
        "kind": "step.succeeded",
        "actor": "engine",
        "message": f"exit 0 in {i % 97} ms",
        "data": {"run": 1, "already_done": False, "before": "running", "after": "succeeded"},
    }


def append_rate(store: Store, count: int, threads: int) -> float:
    """Events per second appended by ``threads`` threads, ``count`` in all."""
    per = count // threads

    def work(offset: int) -> None:
        for i in range(per):
            e = engine_like(offset + i)
            store.append_event(
                None, e["step_id"], e["kind"], e["actor"], e["message"], data=e["data"]
            )

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t * per,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - started)


def fill_to(store: Store, total: int, batch: int = 5000) -> None:
    """Extend the chain to ``total`` events in bulk transactions (valid hashes). Uses the
    store's own query and record code; only the batching is the benchmark's."""
    existing = _last_event(store)
    seq = 0 if existing is None else existing.seq
    prev = GENESIS_HASH if existing is None else existing.hash
    at = utcnow()
    while seq < total:
        with store._transaction("filling the audit log", write=True) as conn:
            for _ in range(min(batch, total - seq)):
                seq += 1
                fields: dict[str, Any] = {
                    **engine_like(seq),
                    "seq": seq,
                    "at": at + timedelta(microseconds=seq),
                    "prev_hash": prev,
                }
                digest = event_hash(**fields)
                mac = None if store.audit_key is None else store.audit_key.mac(digest)
                event = EventRecord(**fields, hash=digest, mac=mac)
                store._run(conn, "insert_event", **rows.event_params(event))
                prev = event.hash


def _last_event(store: Store) -> EventRecord | None:
    newest = None
    after = 0
    while page := store.list_events(after_seq=after, limit=10000):
        newest = page[-1]
        after = newest.seq
    return newest


def token_check_ms(store: Store, calls: int) -> tuple[float, float]:
    """ms per authenticate(), and per authenticate() + authorize() of one action."""
    put_bench_team(store, "casey", roles=("release_captain",), permissions={})
    secret = bench_token(store, "casey", "bench", expires_in=3600)
    auth: list[float] = []
    both: list[float] = []
    for _ in range(calls):
        t0 = time.perf_counter()
        person = authenticate(store, secret)
        t1 = time.perf_counter()
        authorize(person, "release.start", environment="production", policy=policy_of(store))
        t2 = time.perf_counter()
        auth.append((t1 - t0) * 1000)
        both.append((t2 - t0) * 1000)
    return statistics.median(auth), statistics.median(both)


def per_event_signatures(key: AuditKey, count: int = 2000) -> tuple[float, float]:
    """µs to sign one event hash with Ed25519, and to verify one signature."""
    digest = b"0" * 64
    started = time.perf_counter()
    signatures = [key.sign(digest) for _ in range(count)]
    signed = time.perf_counter()
    from shipcaptain.audit.keys import verify_signature

    for signature in signatures:
        verify_signature(key.public, digest, signature)
    verified = time.perf_counter()
    return (signed - started) / count * 1e6, (verified - signed) / count * 1e6


def run(backend: str, appends: int, sizes: list[int], token_calls: int) -> list[bool]:
    verdicts: list[bool] = []
    key = AuditKey.generate()
    with (
        backend_url(backend) as url,
        open_store(url) as store,
        tempfile.TemporaryDirectory(prefix="sc-anchors-") as anchors,
    ):
        settings = Settings(data_dir=Path(anchors))
        store.use_audit_key(key)
        store.migrate()
        one = append_rate(store, appends, 1)
        four = append_rate(store, appends, 4)
        print(f"{backend:<10} append, 1 thread:   {one:8.0f} events/s ({appends} events)")
        print(f"{backend:<10} append, 4 threads:  {four:8.0f} events/s ({appends} events)")
        for size in sizes:
            fill_to(store, size)
            anchor_log(store, key, settings)  # as the releases' ends would have
            started = time.perf_counter()
            check = check_log(store, key.public, read_anchors(settings.anchor_path), key=key)
            took = time.perf_counter() - started
            assert check.ok, check
            assert check.events_checked == size, check
            ok = size < 100_000 or took < VERIFY_TARGET_S
            verdicts.append(ok)
            print(
                f"{backend:<10} audit verify {size:>7} events: {took:6.2f} s "
                f"({size / took:8.0f} events/s)"
                + ("" if size < 100_000 else f"  target < {VERIFY_TARGET_S:g} s: {_v(ok)}")
            )
        append_rate(store, 100, 1)  # a release's worth of events since the last anchor
        started = time.perf_counter()
        anchor_log(store, key, settings, release="rel-bench", run=1)
        print(
            f"{backend:<10} anchor at a release's end (100 new events): "
            f"{(time.perf_counter() - started) * 1000:6.1f} ms"
        )
        auth, both = token_check_ms(store, token_calls)
        ok = both < TOKEN_TARGET_MS
        verdicts.append(ok)
        print(
            f"{backend:<10} token check per CLI call: authenticate {auth:.2f} ms, "
            f"+ authorize {both:.2f} ms (median of {token_calls})  "
            f"target < {TOKEN_TARGET_MS:g} ms: {_v(ok)}"
        )
    return verdicts


def _v(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--appends", type=int, default=2000, help="events per append run")
    parser.add_argument(
        "--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[10_000, 100_000]
    )
    parser.add_argument("--token-calls", type=int, default=300)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    verdicts: list[bool] = []
    for backend in backends:
        if backend == "postgresql" and (why := postgres_unreachable()):
            print(f"postgresql skipped: {why}")
            continue
        verdicts += run(backend, args.appends, sorted(args.sizes), args.token_calls)
    sign_us, verify_us = per_event_signatures(AuditKey.generate())
    print(
        f"per-event Ed25519 instead of an HMAC: sign {sign_us:.0f} µs per append, verify "
        f"{verify_us:.0f} µs per event ({verify_us * 100_000 / 1e6:.1f} s more for 100,000 events)"
    )
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
