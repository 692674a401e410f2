"""The engine's comms and pages: ``announce`` and ``page``.

Call them from inside a checkpointed (DBOS) step: a replay then does not send twice. Both
only record and notify; a notification that cannot be sent is recorded and shown, never an
error of the release.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dbos import DBOS, SetWorkflowID

from shipcaptain import incidents
from shipcaptain.engine import steps
from shipcaptain.engine.ids import CLOCK_QUEUE_NAME, clock_workflow_id
from shipcaptain.engine.runtime import runtime
from shipcaptain.errors import ShipError
from shipcaptain.notifiers import Message, deliver, notifiers_from
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import render_text
from shipcaptain.settings import Settings
from shipcaptain.store.records import utcnow

log = logging.getLogger("shipcaptain.notify")


def comms_facts(rb: Runbook, release_id: str) -> dict[str, Any]:
    """What a comms template sees: what step templates see (``version``, ``release``,
    ``steps`` ...), with every finished step of the release."""
    rt = runtime()
    rec = rt.store.get_release(release_id)
    known: dict[str, Any] = {}
    for sid, run in rt.store.latest_step_runs(release_id).items():
        known[sid] = {"status": run.status, "outputs": dict(run.outputs)}
    return steps.template_context(rb, release_id, steps._state_of(rec), known)


def _settings() -> Settings:
    settings = runtime().settings
    return settings if isinstance(settings, Settings) else Settings()


def _send(rb: Runbook | None, message: Message) -> list[str]:
    settings = _settings()
    notifiers = notifiers_from(settings, rb.comms.channel if rb else None)
    records = deliver(
        runtime().store,
        notifiers,
        message,
        attempts=settings.notify_attempts,
        backoff=settings.notify_backoff,
    )
    return [f"{r.channel}: {r.status}" for r in records]


def _runbook_of(release_id: str) -> Runbook:
    rt = runtime()
    rec = rt.store.get_release(release_id)
    return rt.runbook(rec.runbook_text, rec.runbook_digest)


def announce(release_id: str, template: str, facts: dict[str, Any]) -> None:
    """Render the runbook's comms template ``template`` (start, rollback, complete ...)
    with the release's facts (``facts`` on top; a ``text`` in them is sent as it is), send
    it to each configured channel, and record it (event ``comms.<template>``)."""
    rt = runtime()
    rb = _runbook_of(release_id)
    text = facts.get("text")
    if not text:
        source = rb.comms.templates.get(template)
        if source is None:
            return
        context = comms_facts(rb, release_id)
        context["release"].update({k: v for k, v in facts.items() if k != "text"})
        try:
            text = render_text(source, context)
        except ShipError as exc:  # checked before the release starts; still never fatal
            rt.event(release_id, None, "notification.failed", f"{template} not rendered: {exc}")
            return
    sent = _send(rb, Message(str(text), release_id=release_id, kind=f"comms.{template}"))
    rt.event(
        release_id,
        None,
        f"comms.{template}",
        str(text),
        template=template,
        channels=sent,
    )


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
    _send(rb, Message(text, release_id=release_id, incident_id=incident.id, kind="page"))
    return incident.id


def notify_incident(incident_id: str, kind: str, text: str) -> None:
    """Send an incident's reminder or escalation to the configured channels."""
    inc = runtime().store.get_incident(incident_id)
    rb = _runbook_of(inc.release_id) if inc.release_id else None
    _send(rb, Message(text, release_id=inc.release_id, incident_id=incident_id, kind=kind))


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
def announce_step(release_id: str, template: str, facts: dict[str, Any]) -> None:
    try:
        announce(release_id, template, facts)
    except Exception:  # comms never fail the release
        log.exception("announcing %s of %s failed", template, release_id)


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
            store.record_incident_action(incident.id, "mitigate", "engine", mitigation=how)
        except ShipError as exc:  # mitigated by a person in the meantime: theirs counts
            log.info("incident %s: %s", incident.id, exc)
