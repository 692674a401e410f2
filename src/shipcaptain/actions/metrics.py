"""The ``metrics`` action: post-deploy analysis against Prometheus.

Named PromQL queries, each with a threshold, are measured ``count`` times, every
``interval``. Each measurement of a query is one of:

* **passed**: a number on the right side of its threshold;
* **failed**: a number on the wrong side;
* **inconclusive**: no data (an empty result), ``NaN``, or Prometheus could not answer
  (refused, timed out, a PromQL error). Never a pass, never a crash.

When more measurements of one query failed than ``failure_limit``, the step fails (and
its ``on_failure`` policy applies, e.g. ``rollback``). When more were inconclusive than
``inconclusive_limit``, the analysis pauses for a human decision: an approval gate asks
``decide_roles`` whether to carry on. Approving carries on measuring, and later
inconclusive measurements are then only shown (a step asks people once); failed ones
still fail the step. Rejecting, or nobody deciding within ``decide_within``, fails it.

It is a durable action: each round of measurements is checkpointed and the pauses
between rounds are durable sleeps, so an analysis survives a restart of shipcaptain and
continues where it was. Every measurement is shown as it is taken (a progress line) and
kept in the step's outputs (``measurements``), with ``grafana_url``: the dashboard for the
analysis's time window.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipcaptain.actions.base import (
    ActionOutputs,
    ActionParams,
    DurableAction,
    DurableContext,
    GateRequest,
    Outcome,
    PlanContext,
)
from shipcaptain.integrations.prometheus import PrometheusClient, PrometheusError
from shipcaptain.runbook.durations import Duration, PositiveDuration, format_duration

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"


class MetricQuery(BaseModel):
    """One named PromQL query and its threshold (``below`` and/or ``above``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name shown and stored.")
    query: str = Field(min_length=1, description="PromQL that evaluates to one number.")
    below: float | None = Field(default=None, description="Passes while the value is below this.")
    above: float | None = Field(default=None, description="Passes while the value is above this.")
    unit: str = Field(default="", description="Shown after the value, e.g. `s` or `%`.")

    @model_validator(mode="after")
    def _has_threshold(self) -> MetricQuery:
        if self.below is None and self.above is None:
            raise ValueError(f"query {self.name!r} needs a threshold: below, above or both")
        return self

    def threshold(self) -> str:
        parts = []
        if self.below is not None:
            parts.append(f"< {self.below:g}{self.unit}")
        if self.above is not None:
            parts.append(f"> {self.above:g}{self.unit}")
        return " and ".join(parts)

    def verdict(self, value: float) -> str:
        if self.below is not None and not value < self.below:
            return FAILED
        if self.above is not None and not value > self.above:
            return FAILED
        return PASSED


class GrafanaLink(BaseModel):
    """Where the dashboard is; the link covers the analysis's time window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, description="Grafana's base URL.")
    dashboard_uid: str = Field(min_length=1, description="The dashboard's uid (from its URL).")
    title: str = Field(default="", description="The dashboard's title, e.g. `00-Prod Overview`.")
    before: Duration = Field(
        default=1800.0,
        description="How much time before the analysis the link shows (when `since` is not set).",
    )
    since: datetime | None = Field(
        default=None,
        description="Start of the link's window, e.g. `{{ release.started_at }}` (when the "
        "release started); default: `before` the analysis.",
    )


class MetricsParams(ActionParams):
    """Parameters of the ``metrics`` action."""

    prometheus: str = Field(min_length=1, description="Prometheus base URL, e.g. http://prom:9090.")
    queries: list[MetricQuery] = Field(min_length=1, description="Named queries with thresholds.")
    count: int = Field(default=5, ge=1, description="How many times each query is measured.")
    interval: PositiveDuration = Field(default=60.0, description="Pause between two measurements.")
    failure_limit: int = Field(
        default=0, ge=0, description="Failed measurements of one query allowed before failing."
    )
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        description="Inconclusive measurements of one query allowed before asking people.",
    )
    decide_roles: list[str] = Field(
        default_factory=list, description="Roles asked what to do when it is inconclusive."
    )
    decide_within: Duration = Field(
        default=1800.0, description="How long people have to decide; then the step fails."
    )
    timeout: PositiveDuration = Field(default=10.0, description="Limit for one query.")
    grafana: GrafanaLink | None = Field(default=None, description="Dashboard to link to.")

    @field_validator("queries")
    @classmethod
    def _unique_names(cls, queries: list[MetricQuery]) -> list[MetricQuery]:
        names = [q.name for q in queries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"query names must be unique; repeated: {', '.join(twice)}")
        return queries


def measure_once(params: MetricsParams) -> dict[str, Any]:
    """One round: every query evaluated now. JSON only (it is checkpointed)."""
    taken_at = time.time()
    results: list[dict[str, Any]] = []
    with PrometheusClient(params.prometheus, timeout=params.timeout) as prom:
        for q in params.queries:
            entry: dict[str, Any] = {"name": q.name, "value": None, "verdict": INCONCLUSIVE}
            try:
                sample = prom.query(q.query)
            except PrometheusError as exc:
                entry["reason"] = str(exc)
            else:
                if sample.value is None:
                    entry["reason"] = "no data (empty result)"
                elif math.isnan(sample.value):
                    entry["reason"] = "NaN"
                    entry["value"] = "NaN"
                else:
                    # JSON has no infinity: +Inf (e.g. a quantile past the last bucket) is
                    # kept as text, and judged as the number it is.
                    infinite = math.isinf(sample.value)
                    entry["value"] = f"{sample.value:+}" if infinite else sample.value
                    entry["verdict"] = q.verdict(sample.value)
            results.append(entry)
    return {"at": taken_at, "results": results}


def grafana_url(link: GrafanaLink, start: float, end: float) -> str:
    begin = link.since.timestamp() if link.since is not None else start - link.before
    query = urlencode({"from": int(begin * 1000), "to": int(end * 1000)})
    return f"{link.url.rstrip('/')}/d/{quote(link.dashboard_uid)}?{query}"


class MetricsOutputs(ActionOutputs):
    """Outputs of the ``metrics`` action."""

    measurements: list[dict[str, Any]] = Field(description="Every measurement taken.")
    failed: dict[str, Any] = Field(description="Queries that failed their threshold.")
    inconclusive: dict[str, Any] = Field(description="Queries without data.")
    decisions: list[str] = Field(description="People's decisions on inconclusive results.")
    grafana_url: str | None = Field(default=None, description="The dashboard for the window.")


class MetricsAction(DurableAction[MetricsParams]):
    """Measure PromQL queries against thresholds; fail, pass, or ask people when unsure."""

    name = "metrics"
    changes_world = False
    role_params = ("decide_roles",)
    summary = "Analyse Prometheus metrics against thresholds, N times every interval."
    Params = MetricsParams
    Outputs = MetricsOutputs

    def describe(self, params: MetricsParams, ctx: PlanContext) -> str:
        checks = "; ".join(f"{q.name} {q.threshold()}" for q in params.queries)
        return (
            f"measure {checks} at {params.prometheus}, {params.count} times every "
            f"{format_duration(params.interval)} (failure limit {params.failure_limit}, "
            f"inconclusive limit {params.inconclusive_limit})"
        )

    def run_durable(self, params: MetricsParams, ctx: DurableContext) -> Outcome:
        by_name = {q.name: q for q in params.queries}
        failed = dict.fromkeys(by_name, 0)
        unsure = dict.fromkeys(by_name, 0)
        measurements: list[dict[str, Any]] = []
        decisions: list[str] = []
        started: float | None = None

        def outputs(end: float) -> dict[str, Any]:
            out: dict[str, Any] = {
                "measurements": measurements,
                "failed": dict(failed),
                "inconclusive": dict(unsure),
                "decisions": decisions,
            }
            if params.grafana is not None and started is not None:
                out["grafana_url"] = grafana_url(params.grafana, started, end)
            return out

        for number in range(1, params.count + 1):
            if number > 1:
                ctx.sleep(params.interval)
            taken = ctx.record("measure", lambda: measure_once(params))
            started = started if started is not None else float(taken["at"])
            for entry in taken["results"]:
                measurements.append({"round": number, "at": taken["at"], **entry})
                if entry["verdict"] == FAILED:
                    failed[entry["name"]] += 1
                elif entry["verdict"] == INCONCLUSIVE:
                    unsure[entry["name"]] += 1
            ctx.progress(f"measurement {number}/{params.count}: {_line(taken, by_name)}")
            over = [n for n, c in failed.items() if c > params.failure_limit]
            if over:
                return Outcome.failure(
                    f"{', '.join(over)} failed {max(failed[n] for n in over)} time(s), "
                    f"more than the failure limit {params.failure_limit}: "
                    f"{_line(taken, by_name)}",
                    outputs=outputs(float(taken["at"])),
                    detail=_table(measurements, by_name),
                    retryable=False,
                )
            unsure_now = [n for n, c in unsure.items() if c > params.inconclusive_limit]
            if unsure_now and not decisions:
                reasons = _line(taken, by_name)
                result = ctx.await_gate(
                    GateRequest(
                        kind="approval",
                        prompt=(
                            f"Metrics inconclusive ({reasons}). Carry on with the analysis? "
                            "Reject to fail the step."
                        ),
                        roles=list(params.decide_roles),
                        deadline_seconds=params.decide_within,
                        evidence={"measurements": measurements[-len(by_name) :]},
                    )
                )
                who = ", ".join(d.user for d in result.decisions) or "nobody"
                if not result.approved:
                    verb = "nobody decided in time" if result.timed_out else f"rejected by {who}"
                    decisions.append(f"round {number}: {verb}")
                    return Outcome.failure(
                        f"inconclusive ({reasons}); {verb}",
                        outputs=outputs(float(taken["at"])),
                        detail=_table(measurements, by_name),
                        retryable=False,
                    )
                decisions.append(f"round {number}: carry on, approved by {who}")
                ctx.progress(f"inconclusive metrics accepted by {who}; carrying on")
        end = float(measurements[-1]["at"]) if measurements else 0.0
        verdicts = [m["verdict"] for m in measurements]
        summary = (
            f"{params.count} rounds of {', '.join(by_name)}: {verdicts.count(PASSED)} passed, "
            f"{verdicts.count(FAILED)} failed, {verdicts.count(INCONCLUSIVE)} inconclusive"
            + (f" (inconclusive accepted: {decisions[0]})" if decisions else "")
        )
        return Outcome.success(summary, outputs=outputs(end), detail=_table(measurements, by_name))


def _show(entry: dict[str, Any], q: MetricQuery) -> str:
    value = entry["value"]
    if isinstance(value, int | float):
        return f"{value:.4g}{q.unit}"
    return str(value) if value is not None else "-"


def _line(taken: dict[str, Any], by_name: dict[str, MetricQuery]) -> str:
    parts = []
    for entry in taken["results"]:
        q = by_name[entry["name"]]
        text = f"{q.name} {_show(entry, q)} ({q.threshold()}) {entry['verdict']}"
        if entry.get("reason"):
            text += f": {entry['reason']}"
        parts.append(text)
    return "; ".join(parts)


def _table(measurements: list[dict[str, Any]], by_name: dict[str, MetricQuery]) -> str:
    lines = ["round  query  value  threshold  verdict"]
    for m in measurements:
        q = by_name[m["name"]]
        at = time.strftime("%H:%M:%S", time.gmtime(float(m["at"])))
        line = f"{m['round']} {at}Z  {q.name}  {_show(m, q)}  {q.threshold()}  {m['verdict']}"
        lines.append(line + (f" ({m['reason']})" if m.get("reason") else ""))
    return "\n".join(lines)
