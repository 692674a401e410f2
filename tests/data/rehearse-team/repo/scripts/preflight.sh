#!/usr/bin/env bash
# The notes team's own pre-flight check: run from the root of its repository.
set -euo pipefail
test -f NOTES_APP
echo "notes preflight ok: $(cat NOTES_APP)"
