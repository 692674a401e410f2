"""``shipcaptain incident`` and ``shipcaptain sla report`` as the SRE uses them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helpers.team import make_team
from shipcaptain.cli.main import cli
from shipcaptain.sandbox.doubles.slack import SlackDouble


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


_TOKENS: dict[str, dict[str, str]] = {}


def run(database_url: str, slack: SlackDouble, *args: str, user: str = "sam") -> Result:
    if database_url not in _TOKENS:  # one team per test database
        _TOKENS[database_url] = make_team(database_url)
    env = {
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_TOKEN": _TOKENS[database_url][user],
        "SHIPCAPTAIN_SLACK_WEBHOOK_URL": slack.webhook_url,
        "SHIPCAPTAIN_NOTIFY_BACKOFF": "0",
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_an_incident_from_open_to_resolved_and_the_sla_report(
    database_url: str, tmp_path: Path, slack: SlackDouble
) -> None:
    opened = run(
        database_url,
        slack,
        "incident",
        "open",
        "--severity",
        "P2",
        "--summary",
        "billing slow",
        "--json",
    )
    assert opened.exit_code == 0, opened.output
    inc = json.loads(opened.output)
    at = datetime.fromisoformat(inc["opened_at"])
    assert (datetime.fromisoformat(inc["acknowledge_by"]) - at).total_seconds() == 900
    assert (datetime.fromisoformat(inc["mitigate_by"]) - at).total_seconds() == 7200
    assert inc["opened_by"] == "sam"
    assert inc["status"] == "open"
    (page,) = slack.webhook_posts
    assert page["text"].startswith(f"P2 incident {inc['id']} opened by sam: billing slow")
    assert slack.webhook_secret not in opened.output

    acked = run(database_url, slack, "incident", "ack", inc["id"], user="casey")
    assert acked.exit_code == 0, acked.output
    assert "acknowledged" in acked.output
    assert "by casey" in acked.output
    again = run(database_url, slack, "incident", "ack", inc["id"])
    assert again.exit_code == 5
    assert "already acknowledged" in again.output
    mitigated = run(
        database_url, slack, "incident", "mitigate", inc["id"], "--note", "feature flag off"
    )
    assert mitigated.exit_code == 0
    assert "feature flag off" in mitigated.output
    resolved = run(database_url, slack, "incident", "resolve", inc["id"], "--json")
    done = json.loads(resolved.output)
    assert done["status"] == "resolved"
    assert done["resolved_by"] == "sam"
    assert done["acknowledged_by"] == "casey"
    assert done["mitigated_by"] == "sam"

    shown = run(database_url, slack, "incident", "show", inc["id"])
    assert "acknowledged after" in shown.output
    assert "mitigated after" in shown.output
    listed = run(database_url, slack, "incident", "list", "--since", at.date().isoformat())
    assert inc["id"] in listed.output
    empty = run(database_url, slack, "sla", "report", "--until", "2000-01-01")
    assert "no incidents in that period" in empty.output

    report = run(database_url, slack, "sla", "report", "--json")
    (line,) = json.loads(report.output)
    assert line["incident"] == inc["id"]
    assert line["acknowledge_met"] is True
    assert line["mitigate_met"] is True
    assert 0 <= line["time_to_acknowledge_s"] <= line["time_to_mitigate_s"] < 60
    table = run(database_url, slack, "sla", "report")
    assert "1 incident: acknowledge SLA met 1/1, mitigate SLA met 1/1" in table.output


def test_mistakes_are_clear(database_url: str, slack: SlackDouble) -> None:
    bad = run(database_url, slack, "incident", "open", "--severity", "P7", "--summary", "x")
    assert bad.exit_code == 2
    assert "unknown severity 'P7'; the SLA table has: P1, P2" in bad.output
    missing = run(database_url, slack, "incident", "ack", "inc-nope")
    assert missing.exit_code == 3
    assert "no incident 'inc-nope'" in missing.output
    when = run(database_url, slack, "sla", "report", "--since", "yesterday")
    assert when.exit_code == 2
    assert "--since 'yesterday'" in when.output
