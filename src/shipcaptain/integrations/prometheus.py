"""A small client for Prometheus's HTTP API: evaluate one PromQL expression now.

Only the instant query (``GET /api/v1/query``) is used: a release check asks "what is the
error rate now?", again every interval. The answer is reduced to one number:

* a scalar, or a vector with exactly one sample: its value (``NaN`` stays ``NaN``);
* an empty vector: ``None`` (no data);
* more than one sample: an error, because the threshold would not know which to compare
  (aggregate the query, e.g. ``sum(rate(...))``).

Anything that goes wrong on the way (connection refused, timeout, a non-JSON answer, a
``status: error`` answer such as a PromQL syntax error) raises ``PrometheusError`` with
Prometheus's own message; the caller decides what that means (the ``metrics`` action
counts it as *inconclusive*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from shipcaptain import tls
from shipcaptain.errors import ActionError


class PrometheusError(ActionError):
    """Prometheus could not be asked, or answered with an error."""

    code = "SC610"


@dataclass(frozen=True)
class Sample:
    """One evaluated query: its number (None: no data) and the labels of the series."""

    value: float | None
    labels: dict[str, str]

    @property
    def is_nan(self) -> bool:
        return self.value is not None and math.isnan(self.value)


class PrometheusClient:
    """Ask one Prometheus server (``base_url`` such as ``http://prometheus:9090``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout), headers=headers or {}, verify=tls.verify(verify_tls)
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str, at: float | None = None) -> Sample:
        """Evaluate ``promql`` now (or at the epoch time ``at``) and reduce it to one sample."""
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.base_url}/api/v1/query"
        try:
            response = self._client.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise PrometheusError(f"Prometheus at {self.base_url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.base_url}: {exc}") from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PrometheusError(
                f"Prometheus at {self.base_url} answered {response.status_code} without JSON"
            ) from exc
        if body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {response.status_code}")
            raise PrometheusError(f"Prometheus: {kind}: {body.get('error', 'unknown error')}")
        return _reduce(body.get("data") or {})


def _reduce(data: dict[str, Any]) -> Sample:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return Sample(_number(result[1]), {})
    if kind == "vector" and isinstance(result, list):
        if not result:
            return Sample(None, {})
        if len(result) > 1:
            shown = ", ".join(_series(r.get("metric", {})) for r in result[:3])
            raise PrometheusError(
                f"the query returned {len(result)} series ({shown}...); aggregate it to one "
                "number, e.g. with sum(...) or max(...)"
            )
        return Sample(_number(result[0]["value"][1]), dict(result[0].get("metric", {})))
    raise PrometheusError(f"unsupported result type {kind!r}: use an instant vector or scalar")


def _number(text: str) -> float:
    try:
        return float(text)  # Prometheus writes "NaN", "+Inf", "-Inf"
    except ValueError as exc:
        raise PrometheusError(
            f"Prometheus returned a value that is not a number: {text!r}"
        ) from exc


def _series(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"
