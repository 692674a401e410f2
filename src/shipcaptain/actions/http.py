"""The ``http`` action: call a URL and check what it answers (smoke tests, health checks).

Typical use, from the runbook's smoke tests ("hit /health and confirm 200 + build hash")::

    action: http
    with:
      url: https://app.valuecanvas.com/health
      json_field: build
      body_pattern: "^{{ build_hash }}$"
      until: 5m          # keep trying while the rollout finishes

The expectation is checked in this order: the status code (``expect_status``), the
header (``header``, optionally ``header_pattern``), then the body (``body_pattern``, or,
with ``json_field``, the value of that field of a JSON body). With ``until`` the URL is
tried again every ``interval`` until the expectation holds or the time is up.

Outputs: ``status_code``, ``elapsed_ms``, ``attempts``, and ``matched``: group 1 of the
pattern's match if it has a group, else the whole match (``None`` when nothing was
matched). Named groups, ``(?P<build>[0-9a-f]+)``, also become outputs of their own name
and label the value in the summary ("200 OK in 12 ms, build abc123").

A failed expectation, a refused connection, a DNS failure or a timeout is a failed try
(with the reason), never an exception.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from shipcaptain import tls
from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.runbook.durations import Duration, PositiveDuration, format_duration

BODY_SHOWN = 500
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_RESERVED_OUTPUTS = {"status_code", "elapsed_ms", "attempts", "matched"}


class HttpParams(ActionParams):
    """Parameters of the ``http`` action."""

    url: str = Field(min_length=1, description="URL to call, e.g. https://app.example.com/health.")
    method: Method = Field(default="GET", description="HTTP method.")
    expect_status: int | list[int] = Field(
        default=200, description="Status code, or list of codes, that counts as success."
    )
    body_pattern: str | None = Field(
        default=None,
        description="Regular expression the body (or the `json_field` value) must contain.",
    )
    header: str | None = Field(default=None, description="Response header that must be present.")
    header_pattern: str | None = Field(
        default=None, description="Regular expression the `header` value must contain."
    )
    json_field: str | None = Field(
        default=None,
        description="Dotted path in a JSON body (e.g. `build` or `data.items.0.id`) that must "
        "exist; `body_pattern` is then matched against its value.",
    )
    timeout: PositiveDuration = Field(default=10.0, description="Limit for one request.")
    until: Duration = Field(
        default=0.0, description="Keep trying for this long until the expectation holds."
    )
    interval: PositiveDuration = Field(
        default=2.0, description="Pause between two tries (with `until`)."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers to send.")
    verify_tls: bool = Field(
        default=True,
        description="Check the server's TLS certificate: against the CAs of the file "
        "SSL_CERT_FILE names (or the folder SSL_CERT_DIR names) in the worker's environment, "
        "else certifi's bundle.",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: int | list[int]) -> int | list[int]:
        codes = value if isinstance(value, list) else [value]
        if not codes:
            raise ValueError("expect_status needs at least one status code")
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code (100-599)")
        return value

    @field_validator("body_pattern", "header_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _header_pattern_needs_header(self) -> HttpParams:
        if self.header_pattern is not None and self.header is None:
            raise ValueError("header_pattern needs header: the name of the header to check")
        return self

    @property
    def statuses(self) -> list[int]:
        return self.expect_status if isinstance(self.expect_status, list) else [self.expect_status]


@dataclass
class _Verdict:
    """Whether one answer met the expectation, and what was found."""

    ok: bool
    problem: str = ""
    matched: str | None = None
    label: str = "matched"
    groups: dict[str, str] = field(default_factory=dict)
    about_body: bool = False  # the body did not meet the expectation: show it in the summary


class HttpOutputs(ActionOutputs):
    """Outputs of the ``http`` action, and one per named group of its pattern
    (``(?P<build>...)`` is ``steps.<id>.build``)."""

    model_config = ConfigDict(extra="allow")

    status_code: int = Field(description="The last answer's HTTP status.")
    elapsed_ms: int = Field(description="How long the last request took.")
    matched: str | None = Field(description="What the pattern or JSON field matched.")
    attempts: int = Field(default=1, description="Requests made (with `until`).")


class HttpAction(Action[HttpParams]):
    """Call a URL and check its status, a header and the body; retry until it holds.

    Meant for reads (health checks, smoke tests, version endpoints): it is marked
    idempotent, so a resumed release may call it again. Do not use it for calls that
    change something unless calling them twice is harmless.
    """

    name = "http"
    summary = "Call a URL and check the status, a header and the body (retrying until it holds)."
    Params = HttpParams
    Outputs = HttpOutputs
    idempotent = True

    def describe(self, params: HttpParams, ctx: PlanContext) -> str:
        expect = [" or ".join(str(s) for s in params.statuses)]
        if params.header:
            expect.append(
                f"header {params.header}"
                + (f" matching /{params.header_pattern}/" if params.header_pattern else "")
            )
        if params.json_field:
            expect.append(
                f"JSON field {params.json_field}"
                + (f" matching /{params.body_pattern}/" if params.body_pattern else "")
            )
        elif params.body_pattern:
            expect.append(f"body matching /{params.body_pattern}/")
        text = f"{params.method} {params.url}, expect {', '.join(expect)}"
        if params.until > 0:
            text += (
                f"; retry every {format_duration(params.interval)}"
                f" for up to {format_duration(params.until)}"
            )
        return text

    def run(self, params: HttpParams, ctx: StepContext) -> Outcome:
        started = time.monotonic()
        hard_deadline = started + ctx.timeout
        until_deadline = started + params.until
        attempt = 0
        with httpx.Client(
            timeout=httpx.Timeout(params.timeout),
            verify=tls.verify(params.verify_tls),
            headers=params.headers,
        ) as client:
            while True:
                attempt += 1
                left = hard_deadline - time.monotonic()
                outcome = self._try(client, params, ctx, min(params.timeout, max(left, 0.01)))
                if outcome.ok or not outcome.retryable:
                    return _with_attempts(outcome, attempt, started)
                now = time.monotonic()
                pause = min(params.interval, until_deadline - now)
                if pause <= 0 or now + pause >= hard_deadline:
                    return _with_attempts(outcome, attempt, started)
                ctx.progress(
                    f"try {attempt}: {outcome.summary}; trying again in {format_duration(pause)}"
                )
                time.sleep(pause)

    def _try(
        self, client: httpx.Client, params: HttpParams, ctx: StepContext, timeout: float
    ) -> Outcome:
        where = ctx.redact(f"{params.method} {params.url}")
        began = time.perf_counter()
        try:
            response = client.request(params.method, params.url, timeout=httpx.Timeout(timeout))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return Outcome.failure(f"{where}: bad URL: {ctx.redact(str(exc))}", retryable=False)
        except httpx.TimeoutException as exc:
            what = "could not connect" if isinstance(exc, httpx.ConnectTimeout) else "no answer"
            return Outcome.failure(f"{where}: {what} within {format_duration(timeout)}")
        except httpx.ConnectError as exc:
            return Outcome.failure(f"{where}: could not connect: {ctx.redact(str(exc))}")
        except httpx.HTTPError as exc:
            reason = ctx.redact(str(exc)) or type(exc).__name__
            return Outcome.failure(f"{where}: request failed: {reason}")
        elapsed_ms = round((time.perf_counter() - began) * 1000)
        body = response.text
        verdict = _check(params, response, body)
        got = f"{response.status_code} {response.reason_phrase}".strip()
        outputs: dict[str, Any] = {
            "status_code": response.status_code,
            "elapsed_ms": elapsed_ms,
            "matched": verdict.matched,
        }
        if verdict.ok:
            outputs.update({k: v for k, v in verdict.groups.items() if k not in _RESERVED_OUTPUTS})
            summary = f"{got} in {elapsed_ms} ms"
            if verdict.matched is not None:
                summary += f", {verdict.label} {_one_line(verdict.matched, 80)}"
            return Outcome.success(ctx.redact(summary), outputs=outputs)
        shown = body[:BODY_SHOWN] + (
            f"\n... ({len(body) - BODY_SHOWN} more characters)" if len(body) > BODY_SHOWN else ""
        )
        detail = f"{where}\nexpected: {verdict.problem}\ngot: {got} in {elapsed_ms} ms\n"
        detail += f"body (first {BODY_SHOWN} characters):\n{shown}" if body else "body: (empty)"
        return Outcome.failure(
            ctx.redact(f"{where}: {verdict.problem}, got {_got(verdict, got, body)}"),
            detail=ctx.redact(detail),
            outputs=outputs,
        )


def _check(params: HttpParams, response: httpx.Response, body: str) -> _Verdict:
    if response.status_code not in params.statuses:
        expected = " or ".join(str(s) for s in params.statuses)
        return _Verdict(False, f"expected status {expected}")
    verdict = _Verdict(True)
    if params.header:
        value = response.headers.get(params.header)
        if value is None:
            return _Verdict(False, f"expected header {params.header}")
        if params.header_pattern:
            found = re.search(params.header_pattern, value)
            if not found:
                return _Verdict(
                    False, f"expected header {params.header} to match /{params.header_pattern}/"
                )
            verdict = _found(found, params.header)
    if params.json_field:
        try:
            document = json.loads(body)
        except ValueError:
            return _Verdict(
                False, f"expected a JSON body with field {params.json_field}", about_body=True
            )
        value_found, value = _dig(document, params.json_field)
        if not value_found:
            return _Verdict(False, f"expected JSON field {params.json_field}", about_body=True)
        text = value if isinstance(value, str) else json.dumps(value)
        label = params.json_field.rsplit(".", 1)[-1]
        if not params.body_pattern:
            return _Verdict(True, matched=text, label=label)
        found = re.search(params.body_pattern, text)
        if not found:
            return _Verdict(
                False,
                f"expected JSON field {params.json_field} to match /{params.body_pattern}/",
                about_body=True,
            )
        return _found(found, label)
    if params.body_pattern:
        found = re.search(params.body_pattern, body)
        if not found:
            return _Verdict(
                False, f"expected the body to match /{params.body_pattern}/", about_body=True
            )
        return _found(found, "matched")
    return verdict


def _found(match: re.Match[str], label: str) -> _Verdict:
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    if groups:
        first = next(iter(groups))
        return _Verdict(True, matched=groups[first], label=first, groups=groups)
    value = match.group(1) if match.re.groups else match.group(0)
    return _Verdict(True, matched=value, label=label)


def _dig(document: Any, path: str) -> tuple[bool, Any]:
    """Follow ``a.b.0.c`` through dicts and lists; (False, None) when a part is missing."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def _got(verdict: _Verdict, got: str, body: str) -> str:
    """What came back, in a few words for the summary line."""
    if not verdict.about_body or not body:
        return got
    return f"{got} with body {_one_line(body, 120)!r}"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _with_attempts(outcome: Outcome, attempts: int, started: float) -> Outcome:
    outputs = {**outcome.outputs, "attempts": attempts}
    summary = outcome.summary
    if attempts > 1:
        took = format_duration(round(time.monotonic() - started, 1))
        summary += f" (try {attempts}, after {took})"
    return outcome.model_copy(update={"outputs": outputs, "summary": summary})
