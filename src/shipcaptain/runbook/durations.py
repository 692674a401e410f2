"""Durations as people write them in runbooks: ``30s``, ``5m``, ``2h``, ``1h30m`` or seconds."""

from __future__ import annotations

import math
import re
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$"


#: The longest duration a runbook may give (timeouts, deadlines, SLAs): a year.
MAX_SECONDS = 366 * 86400.0


def parse_duration(value: object) -> float:
    """Return seconds; raise ValueError with a message a user understands."""
    seconds = _seconds(value)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        shown = value if isinstance(value, str) else "that number"
        raise ValueError(f"{shown} is longer than a duration may be (at most 366 days)")
    return seconds


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or text like '30s', '5m', '1h30m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and re.fullmatch(r"(\d+(?:\.\d+)?(?:ms|s|m|h|d))+", text):
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
    raise ValueError(
        f"{value!r} is not a duration; write a number of seconds or text like '30s', '5m', '1h30m'"
    )


def format_duration(seconds: float) -> str:
    """Short human form: ``1h30m``, ``5m``, ``2.5s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    total = round(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    return "".join(out)


# ``Duration`` (the pydantic type of the runbook model and the actions' parameters) is made
# when first imported: printing a duration (``release list``) does not import pydantic.
if TYPE_CHECKING:
    from datetime import datetime

    Duration: TypeAlias = float  # to the type checker; at run time, _duration_type()
    #: A duration that must be more than 0 (a timeout, a pause between two tries).
    PositiveDuration: TypeAlias = float


@cache
def _duration_type() -> Any:
    from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

    return Annotated[
        float,
        BeforeValidator(parse_duration),
        PlainSerializer(format_duration, return_type=str, when_used="json"),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": PATTERN},
                ],
                "description": "Seconds, or text like '30s', '5m', '2h', '1h30m'.",
            }
        ),
    ]


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


@cache
def _positive_duration_type() -> Any:
    from pydantic import AfterValidator

    return Annotated[_duration_type(), AfterValidator(_positive)]


def __getattr__(name: str) -> Any:
    if name == "Duration":
        return _duration_type()
    if name == "PositiveDuration":
        return _positive_duration_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def format_between(
    start: datetime | None, end: datetime | None, now: datetime | None = None
) -> str:
    """How long from ``start`` to ``end`` (or to ``now`` while it goes on), as
    :func:`format_duration` writes it; empty when it has not started."""
    if start is None:
        return ""
    stop = end or now
    if stop is None:
        return ""
    return format_duration(round((stop - start).total_seconds(), 1))
