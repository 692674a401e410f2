"""What a runbook's comms need before a release starts: warnings, not errors.

A template with nowhere to go is the silent drop people discover after the release
("the completion message was recorded as sent but went nowhere"). ``validate`` and
``release start`` say so up front; the engine still records each such message as not
delivered (see :func:`shipcaptain.notifiers.deliver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipcaptain.mentions import unmentionable
from shipcaptain.notifiers import NO_CHANNEL_HINT, channels_configured
from shipcaptain.runbook.model import Runbook
from shipcaptain.store import Store

if TYPE_CHECKING:  # or the light reader's values (settings_env): release start
    from shipcaptain.settings import Settings

#: Templates the engine sends by itself (the rest only through an ``announce`` step).
ENGINE_TEMPLATES = ("start", "failed", "rollback", "complete")


def comms_warnings(
    rb: Runbook, settings: Settings, store: Store | None = None, environment: str | None = None
) -> list[str]:
    """Why some of ``rb``'s comms would not reach anyone with these settings, or would
    name people in plain text (no Slack id in the team file of ``store``)."""
    warnings: list[str] = []
    if store is not None:
        env = environment or _default_environment(rb)
        missing = unmentionable(store, rb, env)
        if missing:
            warnings.append(
                f"no Slack id in the team file for {', '.join(missing)}: comms name them in "
                "plain text instead of mentioning them (set slack: U... in the team file)"
            )
    templates = sorted(rb.comms.templates)
    if templates and not channels_configured(settings):
        warnings.append(
            f"comms.templates: {', '.join(templates)} have no channel and would not be "
            f"delivered ({NO_CHANNEL_HINT})"
        )
    elif templates and settings.slack_token.get_secret_value() and not rb.comms.channel:
        warnings.append("comms.channel is not set: Slack messages go to #releases")
    sent = {*ENGINE_TEMPLATES, *announced_by_steps(rb)}
    for name in templates:
        if name not in sent:
            warnings.append(
                f"comms.templates.{name} is never sent: the engine sends "
                f"{', '.join(ENGINE_TEMPLATES)}; others need an announce step"
            )
    return warnings


def announced_by_steps(rb: Runbook) -> set[str]:
    """The templates an ``announce`` step sends (the engine does not send them again)."""
    return {
        str(s.with_.get("template"))
        for s in rb.steps.values()
        if s.action == "announce" and s.with_.get("template")
    }


def _default_environment(rb: Runbook) -> str:
    param = rb.parameters.get("environment")
    return str(param.default) if param is not None and param.default else "default"
