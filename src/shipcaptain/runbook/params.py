"""A runbook's parameters as people type them: ``name=value`` pairs (the CLI's ``--param``,
the dashboard's start form, one pair a line)."""

from __future__ import annotations

from shipcaptain.errors import UsageError


def parse_params(
    pairs: tuple[str, ...], option: str = "--param", example: str = "version=1.4.0"
) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"{option} {pair!r}: write name=value, e.g. {option} {example}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out
