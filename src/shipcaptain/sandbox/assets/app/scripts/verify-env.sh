#!/usr/bin/env bash
# Checks that the secrets and runtime config a deployment needs are present.
set -euo pipefail
env_name="${1:?usage: verify-env.sh ENVIRONMENT}"
required=(DATABASE_URL SUPABASE_PROJECT_REF)
missing=()
for name in "${required[@]}"; do [[ -n "${!name:-}" ]] || missing+=("$name"); done
if (( ${#missing[@]} )); then echo "missing for $env_name: ${missing[*]}" >&2; exit 1; fi
echo "runtime config for $env_name: ${#required[@]} variables present"
