"""One validated settings object: environment variables prefixed ``SHIPCAPTAIN_``.

CLI options override these. Every other CLI option can also be given as
``SHIPCAPTAIN_<COMMAND>_<OPTION>`` (click's automatic variables, listed in
docs/reference/cli.md); nothing else in shipcaptain reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipcaptain.errors import InvalidSettings
from shipcaptain.settings_env import (
    ENV_PREFIX,
    SettingsPaths,
    check_database_url,
    check_server_url,
    default_data_dir,
)

__all__ = ["ENV_PREFIX", "Settings", "default_data_dir", "load_settings"]


class Settings(SettingsPaths, BaseSettings):
    """shipcaptain's settings. Every field is ``SHIPCAPTAIN_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded SQLite state and logs live.",
    )
    database_url: str = Field(
        default="",
        description="State database: sqlite:///path.db (default, under data_dir) or postgresql://...",
    )
    token: SecretStr = Field(
        default=SecretStr(""),
        description="Your API token (else the one `shipcaptain login` saved). Never shown.",
    )
    worker_id: str = Field(
        default="",
        description="Executor id of this engine process: unique per process, the same after a "
        "restart.",
    )
    poll_interval: float = Field(
        default=0.25, gt=0, description="Seconds between live-view refreshes."
    )
    heartbeat_interval: float = Field(
        default=2.0, gt=0, description="Seconds between an engine process's heartbeats."
    )
    takeover_after: float = Field(
        default=10.0,
        gt=0,
        description="Seconds without a heartbeat after which a worker counts as gone and "
        "a live worker takes over its releases.",
    )
    worker_concurrency: int = Field(
        default=8,
        ge=1,
        description="Releases (and rollbacks) each worker runs at once, a release waiting "
        "at a gate included; the others stay queued for the next free worker.",
    )
    debug: bool = Field(default=False, description="Show tracebacks and debug logs.")
    slack_token: SecretStr = Field(
        default=SecretStr(""),
        description="Slack bot token: release comms go to the runbook's comms channel with "
        "chat.postMessage, one thread per release. A secret: never shown.",
    )
    slack_api_url: str = Field(
        default="",
        description="Base URL of Slack's Web API (empty: Slack's own).",
    )
    slack_webhook_url: SecretStr = Field(
        default=SecretStr(""),
        description="Slack incoming webhook for release comms and pages. A secret: never shown.",
    )
    slack_signing_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The Slack app's signing secret: each gate gets a message with Approve "
        "and Reject buttons in the release's thread, and `shipcaptain server` accepts their "
        "presses at /slack/interactions (checked against it). A secret: never shown.",
    )
    webhook_url: SecretStr = Field(
        default=SecretStr(""),
        description="Generic webhook: comms and pages are POSTed to it as JSON. A secret: "
        "never shown.",
    )
    pagerduty_routing_key: SecretStr = Field(
        default=SecretStr(""),
        description="PagerDuty Events API v2 integration (routing) key: P1 and P2 incidents "
        "trigger, acknowledge and resolve an alert (one per incident). A secret: never shown.",
    )
    pagerduty_url: str = Field(
        default="", description="Base URL of PagerDuty's Events API (empty: PagerDuty's own)."
    )
    opsgenie_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="Opsgenie API integration key: P1 and P2 incidents create, acknowledge "
        "and close an alert (alias: the incident id). A secret: never shown.",
    )
    opsgenie_url: str = Field(
        default="",
        description="Base URL of Opsgenie's API (empty: api.opsgenie.com; the EU one is "
        "https://api.eu.opsgenie.com).",
    )
    public_url: str = Field(
        default="",
        description="Base URL of the dashboard (`shipcaptain server`) as people reach it: "
        "comms link to the release's page (release.url) with it. Empty: no link.",
    )
    notify_attempts: int = Field(
        default=4, ge=1, le=20, description="Tries of one notification before it is given up."
    )
    notify_backoff: float = Field(
        default=1.0,
        ge=0,
        description="Seconds before a notification's second try; each further wait doubles "
        "(a rate limit's Retry-After is honoured, up to 30 s).",
    )
    server: str = Field(
        default="",
        description="URL of a `shipcaptain server`: every command people run (release, "
        "incident, sla, workers, team, token, login, audit, migrations apply) then acts "
        "through its API with SHIPCAPTAIN_TOKEN instead of on the local state database; "
        "`worker` and `server` need the state database itself.",
    )
    session_key: str = Field(
        default="",
        repr=False,
        description="Key that signs the dashboard's sign-in form cookie; give every server "
        "behind one address the same. Empty: a random key per server process (a sign-in form "
        "open across a restart must be sent again). Sessions themselves are kept in the state "
        "database.",
    )
    login_attempts: int = Field(
        default=10,
        ge=1,
        description="Dashboard sign-ins allowed per client address, and per person, within "
        "SHIPCAPTAIN_LOGIN_WINDOW; more are answered 429 with Retry-After.",
    )
    login_window: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="The window, in seconds, that SHIPCAPTAIN_LOGIN_ATTEMPTS counts in.",
    )
    trust_proxy: bool = Field(
        default=False,
        description="The server is behind a reverse proxy that sets X-Forwarded-For and "
        "X-Forwarded-Proto: sign-ins are counted per the client address it names, and "
        "X-Forwarded-Proto: https counts as https (Secure cookies, HSTS).",
    )

    audit_key_file: Path | None = Field(
        default=None,
        description="The audit signing key (Ed25519, PEM): it keys every audit event and signs "
        "the checkpoints anchored outside the database. Keep it off the database host's "
        "backups. Empty: audit-key.pem in data_dir, made on first use (mode 0600). Every "
        "process that writes to one state database needs the same key.",
    )
    audit_anchor_dir: Path | None = Field(
        default=None,
        description="Folder of the anchor file (audit-anchors.jsonl): the signed checkpoints "
        "of the audit log, one appended at each release's end and by `audit anchor`; one "
        "folder per state database. Empty: anchors/ in data_dir (with database_url set: "
        "anchors/db-<sha256 of the URL without its password, 16 digits>/).",
    )
    audit_anchor_git: str = Field(
        default="",
        description="A Git repository (path or URL) each checkpoint is also pushed to, as "
        "the ref refs/shipcaptain/audit-anchors (one commit per checkpoint). Empty: none.",
    )
    audit_anchor_webhook: SecretStr = Field(
        default=SecretStr(""),
        description="A URL each checkpoint is also POSTed to as JSON (a transparency log, a "
        "witness). A secret: never shown.",
    )

    rehearsals_dir: Path | None = Field(
        default=None,
        description="Where `rehearse` keeps each rehearsal's report (report.json, report.md "
        "and its evidence bundles, one folder per rehearsal) for the dashboard's Rehearsals "
        "page, besides its --report-dir. A server shows the folder of its own settings. "
        "Empty: rehearsals/ in data_dir.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("server")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_server_url(value)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with non-None ``overrides`` (CLI options) on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ENV_PREFIX + str(first["loc"][0]).upper() if first["loc"] else ENV_PREFIX
        raise InvalidSettings(f"{name}: {first['msg']}") from exc
