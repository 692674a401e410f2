#!/usr/bin/env bash
# Prints when the last backup of ENVIRONMENT completed, as an ISO 8601 time.
# [sandbox] The real script asks the backup service; this one reports the nightly backup
# that the sandbox keeps in $SHIPCAPTAIN_SANDBOX_STATE/backups.
set -euo pipefail
env_name="${1:?usage: last-backup.sh ENVIRONMENT}"
backup="${SHIPCAPTAIN_SANDBOX_STATE:?}/backups/$env_name.dump"
echo "[sandbox last-backup] $backup" >&2
date -u -r "$backup" +%Y-%m-%dT%H:%M:%SZ
