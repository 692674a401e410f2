"""The one exception root of shipcaptain, with stable error codes.

Every error a user can cause (a bad runbook, a bad flag, a missing permission) is a
``ShipError`` subclass that also inherits the matching builtin, so callers can catch
either. Driver exceptions (psycopg, httpx, subprocess, ...) are translated where they
enter, with ``raise ... from exc``; the engine only sees these.

Each class has a stable ``code`` (shown to users and in ``--json`` output) and an
``exit_code`` that the CLI uses (documented in docs/reference/cli.md, "Exit codes").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a user's file a problem is: file, line (1-based) and field path."""

    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        elif self.line:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts)


class ShipError(Exception):
    """Root of every error shipcaptain raises on purpose."""

    code = "SC000"
    exit_code = 1

    def __init__(self, message: str, *, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is not None and str(self.location):
            return f"{self.location}: {self.message}"
        return self.message

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"code": self.code, "message": self.message}
        if self.location is not None:
            data["file"] = self.location.file
            data["line"] = self.location.line
            data["field"] = self.location.field
        return data


class InvalidRunbook(ShipError, ValueError):
    """The runbook file has one or more mistakes. ``problems`` lists every one."""

    code = "SC100"
    exit_code = 2

    def __init__(self, problems: list[ShipError]) -> None:
        self.problems = problems
        first = problems[0] if problems else None
        lines = [str(p) for p in problems]
        message = (
            "invalid runbook:\n  " + "\n  ".join(lines)
            if len(lines) > 1
            else (first.message if first else "invalid runbook")
        )
        super().__init__(message, location=first.location if len(problems) == 1 and first else None)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": "invalid runbook",
            "problems": [p.to_dict() for p in self.problems],
        }


class RunbookProblem(ShipError, ValueError):
    """One problem in a runbook (a field, a reference, a cycle)."""

    code = "SC101"
    exit_code = 2


class UsageError(ShipError, ValueError):
    """A bad flag, argument or setting."""

    code = "SC200"
    exit_code = 2


class InvalidSettings(UsageError):
    code = "SC201"


class NotFound(ShipError, LookupError):
    """A release, step or approval that does not exist."""

    code = "SC300"
    exit_code = 3


class PermissionDenied(ShipError, PermissionError):
    """The person may not do this (role, separation of duties)."""

    code = "SC400"
    exit_code = 4


class AuthenticationFailed(ShipError, PermissionError):
    """No valid token: none given, or unknown, expired or revoked (the message says which,
    never the token itself)."""

    code = "SC410"
    exit_code = 4


class InvalidState(ShipError, RuntimeError):
    """The release or step is not in a state that allows this (e.g. approving a finished gate)."""

    code = "SC500"
    exit_code = 5


class ActionError(ShipError, RuntimeError):
    """An action failed while running a step (a command exited non-zero, a URL answered 500)."""

    code = "SC600"
    exit_code = 6


class StepTimeout(ActionError, TimeoutError):
    code = "SC601"


class StoreError(ShipError, RuntimeError):
    """The state database could not be reached or is not in the expected shape."""

    code = "SC700"
    exit_code = 7


class ReleaseFailed(ShipError, RuntimeError):
    """A release ended in failure (used for the CLI's exit code)."""

    code = "SC800"
    exit_code = 10
