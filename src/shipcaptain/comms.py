"""What a runbook's comms need before a release starts: warnings, not errors.

A template with nowhere to go is the silent drop people discover after the release
("the completion message was recorded as sent but went nowhere"). ``validate`` and
``release start`` say so up front; the engine still records each such message as not
delivered (see :func:`shipcaptain.notifiers.deliver`).
"""

from __future__ import annotations

from shipcaptain.notifiers import NO_CHANNEL_HINT, channels_configured
from shipcaptain.runbook.model import Runbook
from shipcaptain.settings import Settings

#: Templates the engine sends by itself (the rest only through an ``announce`` step).
ENGINE_TEMPLATES = ("start", "failed", "rollback", "complete")


def comms_warnings(rb: Runbook, settings: Settings) -> list[str]:
    """Why some of ``rb``'s comms would not reach anyone with these settings."""
    warnings: list[str] = []
    templates = sorted(rb.comms.templates)
    if templates and not channels_configured(settings):
        warnings.append(
            f"comms.templates: {', '.join(templates)} have no channel and would not be "
            f"delivered ({NO_CHANNEL_HINT})"
        )
    elif templates and settings.slack_token.get_secret_value() and not rb.comms.channel:
        warnings.append("comms.channel is not set: Slack messages go to #releases")
    return warnings
