"""Announcements and pages, as audit events only.

A minimal stand-in with the notifier work's interface: ``announce`` and ``page`` are called
from inside a checkpointed step (so they run once per release, even after a crash) and
record what would go out in the release's timeline. The notifier work (Slack, the pager)
replaces this module with the real one, under the same two names and signatures.
"""

from __future__ import annotations

import uuid
from typing import Any

from shipcaptain.engine.runtime import runtime


def announce(release_id: str, template: str, facts: dict[str, Any]) -> None:
    """Record the announcement ``template`` (e.g. "rollback") with the facts it says."""
    runtime().event(
        release_id,
        None,
        f"comms.{template}",
        str(facts.get("text") or f"{template} announcement"),
        template=template,
        facts=facts,
    )


def page(release_id: str | None, severity: str, summary: str) -> str:
    """Record a page to the on-call SRE; returns its id."""
    page_id = f"page-{uuid.uuid4().hex[:12]}"
    if release_id is not None:
        runtime().event(
            release_id,
            None,
            "page.requested",
            f"{severity} page to the on-call SRE: {summary}",
            severity=severity,
            page_id=page_id,
        )
    return page_id
