"""How fast shipcaptain classifies migration files (expand or contract, with findings).

Writes N migration files (default 1,000) of realistic shapes into a temporary directory,
then times discovery + classification with pglast, and separately squawk's findings for all
files in one squawk run. Prints files per second. Target: 1,000 files in under 10 seconds
including squawk; exits 1 when missed."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from shipcaptain.migrations.classify import classify_sql
from shipcaptain.migrations.discovery import discover
from shipcaptain.migrations.lint import squawk_findings

SHAPES = [
    "CREATE TABLE t{i} (id bigint PRIMARY KEY, title text, owner uuid NOT NULL);\n"
    "ALTER TABLE t{i} ENABLE ROW LEVEL SECURITY;\n"
    "CREATE POLICY p{i} ON t{i} FOR SELECT USING (auth.uid() = owner);\n",
    "ALTER TABLE t{j} ADD COLUMN c{i} text;\nCREATE INDEX CONCURRENTLY i{i} ON t{j} (c{i});\n",
    "CREATE OR REPLACE FUNCTION f{i}(x int) RETURNS int LANGUAGE plpgsql AS $$\n"
    "BEGIN\n  RETURN x + {i};\nEND;\n$$;\n",
    "ALTER TABLE t{j} DROP COLUMN c{j};\nALTER TABLE t{j} ALTER COLUMN title SET NOT NULL;\n",
    "DO $$ BEGIN PERFORM {i}; END $$;\n",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.files):
            sql = SHAPES[i % len(SHAPES)].format(i=i, j=max(0, i - 1))
            (root / f"{20240101000000 + i}_m{i}.sql").write_text(sql)
        start = time.perf_counter()
        files = discover(root)
        phases = [classify_sql(f.sql, str(f.path)).phase for f in files]
        classify_s = time.perf_counter() - start
        start = time.perf_counter()
        lint = squawk_findings([f.path for f in files])
        squawk_s = time.perf_counter() - start
    n = len(phases)
    print(f"files: {n} ({phases.count('expand')} expand, {phases.count('contract')} contract)")
    print(f"classification (pglast): {classify_s:.3f} s = {n / classify_s:,.0f} files/s")
    if lint:
        print(f"squawk findings:         {squawk_s:.3f} s = {n / squawk_s:,.0f} files/s")
    else:
        print("squawk findings:         squawk not installed, not measured")
    total = classify_s + (squawk_s if lint else 0)
    print(f"total: {total:.3f} s = {n / total:,.0f} files/s (target: 1,000 files < 10 s)")
    return 0 if total * 1000 / n < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
