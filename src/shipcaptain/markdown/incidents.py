"""Sentences that say which severity an incident gets, and when: "If the deployment fails,
declare a P1", "If error rate > 5% for 5 minutes, declare a SEV1/P1".

shipcaptain opens an incident by itself in one case only: a post-deploy check of a
customer-facing release failed (``incidents`` in the runbook: the severity, the phases
whose failures count). A sentence whose condition is that (a failed deployment, rollout,
smoke test, health or post-deploy check) becomes those rules. Any other condition (a metric
threshold, "customers report", a time of day) names nothing shipcaptain can watch: the
import refuses it at its line and says how to write it, rather than dropping it or running
it as a step.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

#: "If X, declare a SEV1" / "When X then page ... P1"
_RULE = re.compile(
    r"^\s*(?:if|when|whenever|should)\b\s*(?P<condition>.+?)\s*(?:,|\bthen\b|:|—|->|→)\s*"
    r"(?P<then>.*)$",
    re.I | re.S,
)
#: the verb that declares (opens, pages ...) the incident: an instruction ("declare",
#: "page", "treat it as", "we declare") or a passive ("a SEV1 is declared"); not being paged
#: ("Getting paged about a SEV-3 ...") nor what happened before ("it was triggered")
_DECLARE = re.compile(
    r"\b(?:is|are|be|been)\s+(?:declared|opened|raised|filed|escalated|treated)\b"
    r"|(?<!getting )(?<!get )(?<!gets )(?<!being )\b(?:declare|open|raise|page|trigger|"
    r"escalate|start|treat|call|file)s?\b",
    re.I,
)
#: the end of a sentence: what follows it is not the rule's
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
_SEVERITY = re.compile(r"\b(?:sev(?:erity)?[- ]?([0-5])|p([0-5]))\b", re.I)
#: conditions shipcaptain watches itself: a failed check of the release
_FAILED_CHECK = re.compile(
    r"\b(deploy\w*|release|rollout|roll-out|smoke[- ]?tests?|health[- ]?checks?|"
    r"post[- ]deploy\w*(?:\s+checks?)?|verification|validation|checks?)\b"
    r"[^.]*?\b(fail\w*|is red|are red|does not pass|do not pass|unhealthy)\b",
    re.I,
)
_MEASURED = re.compile(r"[<>≥≤%]|\b\d+(?:\.\d+)?\s*(?:%|ms|s|seconds?|minutes?|mins?)\b", re.I)
#: phase titles of the checks after the rollout
_POST_DEPLOY = re.compile(
    r"post[- ]?deploy|verif|validat|smoke|health|after (?:the )?(?:deploy|rollout)", re.I
)


@dataclass(frozen=True)
class IncidentRule:
    line: int
    text: str
    condition: str
    severity: str  # as the sentence spells it, e.g. "SEV1"


def incident_rule(text: str, line: int) -> IncidentRule | None:
    """The rule a sentence states, if it is one: a condition, then, in the same sentence,
    a verb that declares, opens or pages the incident and after it a severity ("SEV1",
    "Sev-2", "P1", "severity 1")."""
    plain = " ".join(text.replace("`", "").replace("*", "").split())
    # one sentence: "If you are on-call for your team, there are expectations. Getting
    # paged about a SEV-3 ..." declares nothing
    plain = _SENTENCE_END.split(plain, maxsplit=1)[0]
    match = _RULE.match(plain)
    if match is None:
        return None
    then = match.group("then")
    severity = _SEVERITY.search(then)
    declare = _DECLARE.search(then)
    if severity is None or declare is None:
        return None
    passive = declare.group(0).split()[0].lower() in ("is", "are", "be", "been")
    if not passive and declare.start() > severity.start():
        return None  # the severity of something else, before the instruction
    return IncidentRule(line, plain, match.group("condition"), severity.group(0))


def names(rule: IncidentRule) -> list[str]:
    """Every severity the sentence names, in order ("SEV1/P1" -> SEV1, P1)."""
    then = _RULE.match(rule.text)
    return [m.group(0) for m in _SEVERITY.finditer(then.group("then") if then else rule.text)]


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower()).replace("severity", "sev")


def severity_in(rule: IncidentRule, slas: list[str]) -> tuple[str | None, str | None]:
    """(the SLA key the rule's severity is, None) or (None, why not)."""
    said = names(rule)
    if not slas:
        return said[0], None
    by_key = {_key(k): k for k in slas}
    for name in said:
        if _key(name) in by_key:
            return by_key[_key(name)], None
    close = difflib.get_close_matches(_key(said[0]), list(by_key), n=1, cutoff=0.5)
    digit = re.sub(r"\D", "", said[0])
    same = [k for k in slas if re.sub(r"\D", "", k) == digit]
    if close:
        hint = f"; did you mean {by_key[close[0]]!r}?"
    elif same:
        hint = f"; did you mean {same[0]!r} (the same level)?"
    else:
        hint = ""
    return None, (
        f"severity {'/'.join(said)} is not in the runbook's SLA table ({', '.join(slas)}){hint}"
    )


def watchable(rule: IncidentRule) -> bool:
    """Is the condition a failed check of the release (what shipcaptain watches)?"""
    return bool(_FAILED_CHECK.search(rule.condition)) and not _MEASURED.search(rule.condition)


def refusal(rule: IncidentRule, severity: str) -> str:
    return (
        f"incident rule not imported: '{rule.condition}' is not something shipcaptain "
        f"watches (it opens a {severity} incident itself only when a post-deploy check of a "
        "customer-facing release fails); make the condition a check under the post-deploy "
        "heading (e.g. a metrics step: the query, `below:` the threshold, `count:` for the "
        f"duration) and write 'If a post-deploy check fails, declare a {severity}', or move "
        "the sentence out of the runbook"
    )


def post_deploy_phases(phases: list[tuple[str, str]]) -> list[str]:
    """The ids of the phases (id, title) that check the release after its rollout."""
    return [pid for pid, title in phases if pid == "post_deploy" or _POST_DEPLOY.search(title)]
