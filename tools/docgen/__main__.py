"""``python -m tools.docgen [DOCS_DIR] [--check]``: rewrite the generated reference pages,
or (``--check``) only say which are stale or missing (exit 1), writing nothing."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tools.docgen import write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docgen", description=__doc__)
    parser.add_argument("docs_dir", nargs="?", default="docs", help="the docs folder (docs)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a page is stale"
    )
    args = parser.parse_args(argv)
    if not args.check:
        for written_path in write_all(args.docs_dir):
            print(f"wrote {written_path}")
        return 0
    stale = []
    with tempfile.TemporaryDirectory() as scratch:
        for fresh in write_all(scratch):
            committed = Path(args.docs_dir) / "reference" / fresh.name
            if not committed.is_file() or committed.read_bytes() != fresh.read_bytes():
                stale.append(committed)
    for path in stale:
        print(f"stale: {path} (run `python -m tools.docgen` and commit the result)")
    return 1 if stale else 0


sys.exit(main())
