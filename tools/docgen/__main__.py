"""``python -m tools.docgen [DOCS_DIR]``: rewrite the generated reference pages."""

from __future__ import annotations

import sys

from tools.docgen import write_all

for written_path in write_all(sys.argv[1] if len(sys.argv) > 1 else "docs"):
    print(f"wrote {written_path}")
