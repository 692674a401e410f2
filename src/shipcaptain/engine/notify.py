"""The engine's comms and pages: ``announce`` and ``page``.

Call them from inside a checkpointed (DBOS) step: a replay then does not send twice. Both
only record and notify; a notification that cannot be sent is recorded and shown, never an
error of the release.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from dbos import DBOS, SetWorkflowID

from shipcaptain import events, incidents, mentions, paging
from shipcaptain.engine import steps
from shipcaptain.engine.ids import CLOCK_QUEUE_NAME, clock_workflow_id
from shipcaptain.engine.runtime import runtime
from shipcaptain.errors import ShipError
from shipcaptain.notifiers import Message, deliver, notifiers_from
from shipcaptain.records import NotificationRecord, utcnow
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import render_text
from shipcaptain.settings_env import SettingsPaths

if TYPE_CHECKING:
    from shipcaptain.settings import Settings

log = logging.getLogger("shipcaptain.notify")


def comms_facts(rb: Runbook, release_id: str) -> dict[str, Any]:
    """What a comms template sees: what step templates see (``version``, ``release``,
    ``steps`` ...), with every finished step of the release."""
    rt = runtime()
    rec = rt.store.get_release(release_id)
    known: dict[str, Any] = {}
    for sid, run in rt.store.latest_step_runs(release_id).items():
        known[sid] = {"status": run.status, "outputs": dict(run.outputs)}
    context = steps.template_context(rb, release_id, steps._state_of(rec), known)
    base = _settings().public_url.rstrip("/")
    context["release"]["url"] = f"{base}/releases/{release_id}" if base else ""
    context["release"]["captain_mention"] = mentions.person_mention(rt.store, rec.started_by)
    for role, people in mentions.role_mentions(rt.store, rb, rec.environment).items():
        context["roles"][role]["mentions"] = people
    return context


def start_after_steps(rb: Runbook) -> list[str]:
    """The steps that must pass before the start message (the pre-flight phase's)."""
    phases = rb.comms.start_after
    if phases is None:
        phases = [p.id for p in rb.phases if p.id == "preflight"]
    return [s.id for p in rb.phases if p.id in phases for s in p.steps]


def _settings() -> Settings:
    settings = runtime().settings
    if isinstance(settings, SettingsPaths):  # Settings, or the light reader's same values
        return cast("Settings", settings)
    from shipcaptain.settings import Settings

    return Settings()


def _send(rb: Runbook | None, message: Message) -> list[NotificationRecord]:
    settings = _settings()
    notifiers = notifiers_from(settings, rb.comms.channel if rb else None)
    return deliver(
        runtime().store,
        notifiers,
        message,
        attempts=settings.notify_attempts,
        backoff=settings.notify_backoff,
    )


def _runbook_of(release_id: str) -> Runbook:
    rt = runtime()
    rec = rt.store.get_release(release_id)
    return rt.runbook(rec.runbook_text, rec.runbook_digest)


def announce(release_id: str, template: str, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Render the runbook's comms template ``template`` (start, rollback, complete ...)
    with the release's facts (``facts`` on top; a ``text`` in them is sent as it is), send
    it to each configured channel, and record it (event ``comms.<template>``). The start
    message is sent once per release (a resumed release does not announce it again).
    Returns each channel's outcome: ``{"channel", "status", "error"}``."""
    rt = runtime()
    rb = _runbook_of(release_id)
    if template == "start" and any(
        n.kind == "comms.start" for n in rt.store.list_notifications(release_id)
    ):
        return []
    text = facts.get("text")
    if not text:
        source = rb.comms.templates.get(template)
        if source is None:
            return []
        context = comms_facts(rb, release_id)
        context["release"].update({k: v for k, v in facts.items() if k != "text"})
        try:
            text = render_text(source, context).strip()  # an empty last fact (url)
        except ShipError as exc:  # checked before the release starts; still never fatal
            failed = events.NotificationFailed.kind
            rt.event(release_id, None, failed, f"{template} not rendered: {exc}")
            return [{"channel": "", "status": "failed", "error": f"not rendered: {exc}"}]
    kind = events.CommsSent.of(template)
    records = _send(rb, Message(str(text), release_id=release_id, kind=kind))
    delivered = any(r.status == "sent" for r in records)
    rt.event(
        release_id,
        None,
        kind,
        str(text),  # a channel that did not get it: its notification.failed event
        template=template,
        channels=[f"{r.channel}: {r.status}" for r in records],
        delivered=delivered,
    )
    return [{"channel": r.channel, "status": r.status, "error": r.error} for r in records]


def page(release_id: str | None, severity: str, summary: str) -> str:
    """Open an incident (or the release's open one), start its SLA clock, notify; its id."""
    rt = runtime()
    if release_id is not None:
        existing = rt.store.open_incident_of(release_id)
        if existing is not None:  # a replay of this step: the clock may not have started
            start_clock(existing.id)
            return existing.id
    rb = _runbook_of(release_id) if release_id is not None else None
    incident = rt.store.open_incident(
        incidents.new_incident(
            slas=incidents.slas_of(rb),
            severity=severity,
            summary=summary,
            opened_by="engine",
            opened_at=utcnow(),
            release_id=release_id,
            owners=incidents.owners_of(rb),
        )
    )
    start_clock(incident.id)
    text = f"{severity} incident {incident.id}: {summary} — " + incidents.clock_text(
        incident, incident.opened_at
    )
    if rb is not None and release_id is not None:
        environment = rt.store.get_release(release_id).environment
        people = [
            mentions.mention(p)
            for role in rb.incidents.owners
            for p in mentions.role_people(rt.store, rb, environment, role)
        ]
        if people:
            text += f" On call: {', '.join(dict.fromkeys(people))}."
    _send(rb, Message(text, release_id=release_id, incident_id=incident.id, kind="page"))
    paging.page_incident(_settings(), rt.store, incident, "trigger", text)
    return incident.id


def notify_incident(incident_id: str, kind: str, text: str) -> None:
    """Send an incident's reminder or escalation to the configured channels."""
    inc = runtime().store.get_incident(incident_id)
    rb = _runbook_of(inc.release_id) if inc.release_id else None
    _send(rb, Message(text, release_id=inc.release_id, incident_id=incident_id, kind=kind))


def gate_message(release_id: str, run: int, step_key: str, request: dict[str, Any]) -> None:
    """A gate opened: with Slack interactions on (a signing secret), its message with
    Approve and Reject buttons in the release's thread."""
    from shipcaptain.notifiers import SlackChannel
    from shipcaptain.slack_actions import gate_blocks

    settings = _settings()
    if not settings.slack_signing_secret.get_secret_value():
        return
    rb = _runbook_of(release_id)
    slack = [n for n in notifiers_from(settings, rb.comms.channel) if isinstance(n, SlackChannel)]
    if not slack:
        return
    who = ", ".join([*(f"role {r}" for r in request["roles"]), *request["people"]]) or "anyone"
    text = f"{step_key} waits for {who}: {request['prompt']}"
    blocks = gate_blocks(release_id, run, step_key, str(request["kind"]), f"*{text}*")
    deliver(
        runtime().store,
        list(slack),
        Message(text, release_id=release_id, kind="gate", blocks=blocks),
        attempts=settings.notify_attempts,
        backoff=settings.notify_backoff,
    )


def start_clock(incident_id: str) -> None:
    """Queue the incident's durable SLA clock for a worker (once: its id is fixed). Not
    in this process: a CLI running its own release stops when the release ends, and the
    clock must outlive it.

    From a thread of its own: DBOS starts no workflow from inside a step (``page`` runs
    in one), and a fresh thread has no DBOS context."""
    from shipcaptain.engine.incident_clock import incident_clock

    def start() -> None:
        with SetWorkflowID(clock_workflow_id(incident_id)):
            DBOS.enqueue_workflow(CLOCK_QUEUE_NAME, incident_clock, incident_id)

    failed: list[BaseException] = []

    def run() -> None:
        try:
            start()
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"clock-{incident_id}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@DBOS.step(name="shipcaptain.announce")
def announce_step(release_id: str, template: str, facts: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return announce(release_id, template, facts)
    except Exception as exc:  # comms never fail the release
        log.exception("announcing %s of %s failed", template, release_id)
        return [{"channel": "", "status": "failed", "error": f"{type(exc).__name__}: {exc}"}]


@DBOS.step(name="shipcaptain.page")
def page_step(release_id: str | None, severity: str, summary: str) -> str | None:
    try:
        return page(release_id, severity, summary)
    except Exception:
        log.exception("paging for %s failed", release_id)
        return None


@DBOS.step(name="shipcaptain.incident_mitigated")
def mitigated_by_rollback(release_id: str, how: str) -> None:
    """A release rolled back (on its own or by people): its open incidents are mitigated."""
    store = runtime().store
    for incident in store.unmitigated_incidents_of(release_id):
        try:
            done = store.record_incident_action(incident.id, "mitigate", "engine", mitigation=how)
        except ShipError as exc:  # mitigated by a person in the meantime: theirs counts
            log.info("incident %s: %s", incident.id, exc)
            continue
        text = f"{done.severity} incident {done.id} mitigated: {how}"
        paging.page_incident(_settings(), store, done, "mitigate", text)
