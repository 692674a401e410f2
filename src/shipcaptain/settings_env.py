"""The settings without pydantic-settings: what the commands that only read need at once.

Importing pydantic-settings (and pydantic under it) costs ~0.15 s, as much as all the rest
of ``shipcaptain release list`` (issue 27). The settings are still declared once, by
:class:`shipcaptain.settings.Settings`; this module holds what that class and a light
reader share (the prefix, the default data folder, the URL checks, the paths derived from
the values) and :func:`read_settings`, which reads the same variables into a
:class:`SettingsValues` with the same values when it can be sure of them: a string, a
secret, a path, a flag written the way pydantic reads it, a number written in plain digits
within the field's limits. Anything it cannot be sure of (a number written otherwise or out
of its limits, a bad URL, an empty path, a variable given twice in other cases) makes it
answer None, and the caller loads :class:`~shipcaptain.settings.Settings`, which gives the
value or the error (naming the variable) exactly as always. Every command reads its
settings this way first (a worker's and a cluster's are mostly numbers: a heartbeat, a
takeover time); only the sandbox's commands, which copy them, load the class.
``tests/unit/test_settings_light.py`` keeps :data:`FIELDS` and :data:`LIMITS` equal to the
class's fields and the values of both equal.
"""

from __future__ import annotations

import hashlib
import operator
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

ENV_PREFIX = "SHIPCAPTAIN_"


def default_data_dir() -> Path:
    """``./.shipcaptain`` when it exists in the working directory, else the user's data dir."""
    local = Path.cwd() / ".shipcaptain"
    if local.is_dir():
        return local
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "shipcaptain"


#: the schemes SHIPCAPTAIN_DATABASE_URL may use
DATABASE_SCHEMES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")


def check_database_url(value: str) -> str:
    """``SHIPCAPTAIN_DATABASE_URL``: empty, or a URL of a database shipcaptain knows."""
    if value and not value.startswith(DATABASE_SCHEMES):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return value


def check_server_url(value: str) -> str:
    """``SHIPCAPTAIN_SERVER``: empty, or an http(s) URL (without its trailing slash)."""
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


class SettingsPaths:
    """What the settings derive from their values (both :class:`Settings` and
    :class:`SettingsValues` have it)."""

    if TYPE_CHECKING:
        data_dir: Path
        database_url: str
        worker_id: str
        audit_key_file: Path | None
        audit_anchor_dir: Path | None
        rehearsals_dir: Path | None

    @property
    def state_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'shipcaptain.db'}"

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit-key.pem"

    @property
    def anchor_path(self) -> Path:
        """The anchor file: one per state database (its anchors name its log, and a log
        that is not the one they signed is reported as replaced)."""
        if self.audit_anchor_dir is not None:
            return self.audit_anchor_dir / "audit-anchors.jsonl"
        folder = self.data_dir / "anchors"
        if self.database_url:  # a data dir may serve several databases: one folder each
            from shipcaptain.urls import mask_url

            digest = hashlib.sha256(mask_url(self.database_url).encode("utf-8")).hexdigest()
            folder = folder / f"db-{digest[:16]}"
        return folder / "audit-anchors.jsonl"

    @property
    def rehearsals_path(self) -> Path:
        return self.rehearsals_dir or self.data_dir / "rehearsals"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "shipcaptain.log"

    def worker_id_or_default(self, kind: str = "worker") -> str:
        import socket  # here: a read-only command never needs it (issue 27)

        return self.worker_id or f"{socket.gethostname()}-{kind}"


class Secret:
    """A secret value as :class:`pydantic.SecretStr` holds it: never shown."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret('{self}')"

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        getter = getattr(other, "get_secret_value", None)
        return bool(callable(getter) and getter() == self._value)

    def __hash__(self) -> int:
        return hash(self._value)


#: the fields of :class:`~shipcaptain.settings.Settings`: (kind, default); a default of
#: None for a path field means its default factory (the data dir) or None
FIELDS: dict[str, tuple[str, Any]] = {
    "data_dir": ("path", None),
    "database_url": ("str", ""),
    "token": ("secret", ""),
    "worker_id": ("str", ""),
    "poll_interval": ("float", 0.25),
    "heartbeat_interval": ("float", 2.0),
    "takeover_after": ("float", 10.0),
    "worker_concurrency": ("int", 8),
    "debug": ("bool", False),
    "slack_token": ("secret", ""),
    "slack_api_url": ("str", ""),
    "slack_webhook_url": ("secret", ""),
    "slack_signing_secret": ("secret", ""),
    "webhook_url": ("secret", ""),
    "pagerduty_routing_key": ("secret", ""),
    "pagerduty_url": ("str", ""),
    "opsgenie_api_key": ("secret", ""),
    "opsgenie_url": ("str", ""),
    "public_url": ("str", ""),
    "notify_attempts": ("int", 4),
    "notify_backoff": ("float", 1.0),
    "server": ("str", ""),
    "session_key": ("str", ""),
    "login_attempts": ("int", 10),
    "login_window": ("float", 60.0),
    "trust_proxy": ("bool", False),
    "audit_key_file": ("path?", None),
    "audit_anchor_dir": ("path?", None),
    "audit_anchor_git": ("str", ""),
    "audit_anchor_webhook": ("secret", ""),
    "rehearsals_dir": ("path?", None),
}

#: the limits of the number fields, as :class:`~shipcaptain.settings.Settings` declares
#: them (pydantic's ``gt``, ``ge``, ``le``)
LIMITS: dict[str, dict[str, float]] = {
    "poll_interval": {"gt": 0},
    "heartbeat_interval": {"gt": 0},
    "takeover_after": {"gt": 0},
    "worker_concurrency": {"ge": 1},
    "notify_attempts": {"ge": 1, "le": 20},
    "notify_backoff": {"ge": 0},
    "login_attempts": {"ge": 1},
    "login_window": {"gt": 0, "le": 86400},
}
_WITHIN = {"gt": operator.gt, "ge": operator.ge, "le": operator.le}

#: how pydantic reads a flag from text (case-insensitive)
_FLAGS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}
_CHECKS = {"database_url": check_database_url, "server": check_server_url}


class _Unsure(Exception):
    """A value the light reader leaves to pydantic."""


class SettingsValues(SettingsPaths):
    """The settings' values as :func:`read_settings` read them: the same attributes and
    derived paths as :class:`~shipcaptain.settings.Settings` (frozen, too)."""

    _values: dict[str, Any]

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the settings are frozen: cannot set {name}")

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> SettingsValues:
        """A copy with ``update``'s values, unchecked, as ``Settings.model_copy`` makes it
        (``worker --concurrency``: a value click checked already)."""
        unknown = set(update or ()) - set(self._values)
        if unknown:
            raise AttributeError(f"no such settings: {', '.join(sorted(unknown))}")
        return SettingsValues({**self._values, **(update or {})})

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={v!r}" for k, v in self._values.items() if k != "session_key"
        )  # the session key is never shown (repr=False in Settings)
        return f"SettingsValues({shown})"


def _value(name: str, kind: str, given: Any) -> Any:
    if kind == "bool":
        if isinstance(given, bool):
            return given
        flag = _FLAGS.get(str(given).lower())
        if flag is None:
            raise _Unsure(name)
        return flag
    if kind in ("int", "float"):
        return _number(name, kind, given)
    if kind in ("path", "path?"):
        if isinstance(given, Path):
            return given
        if not str(given):
            raise _Unsure(name)
        return Path(str(given))
    if not isinstance(given, str):
        raise _Unsure(name)
    if kind == "secret":
        return Secret(given)
    check = _CHECKS.get(name)
    if check is not None:
        try:
            return check(given)
        except ValueError:
            raise _Unsure(name) from None  # pydantic says it, naming the variable
    return given


def _plain_digits(text: str) -> bool:
    """ASCII digits without a leading zero (``0`` itself aside): read alike by every reader."""
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def _number(name: str, kind: str, given: Any) -> int | float:
    """A number as pydantic reads it, when it is sure to be the same: an int or float given
    as such (a CLI option), or text in plain digits (``30``, ``0.5``; a float may have one
    point), within the field's limits. Anything else (``1e3``, ``+2``, `` 5``, ``0x10``,
    ``inf``, a value out of its limits) is pydantic's to read or refuse."""
    if isinstance(given, bool):
        raise _Unsure(name)
    if isinstance(given, int) or (isinstance(given, float) and kind == "float"):
        value: int | float = float(given) if kind == "float" else given
    elif isinstance(given, str):
        whole, point, fraction = given.partition(".")
        plain = _plain_digits(whole) and (
            not point or (kind == "float" and fraction.isascii() and fraction.isdigit())
        )
        if not plain:
            raise _Unsure(name)
        value = float(given) if kind == "float" else int(given)
    else:
        raise _Unsure(name)
    for bound, limit in LIMITS.get(name, {}).items():
        if not _WITHIN[bound](value, limit):
            raise _Unsure(name)  # pydantic says what the limit is, naming the variable
    return value


def read_settings(
    environ: Mapping[str, str] | None = None, **overrides: object
) -> SettingsValues | None:
    """The settings from the environment with non-None ``overrides`` (CLI options) on top,
    as :func:`shipcaptain.settings.load_settings` reads them, or None when only that can
    say (see the module's docstring)."""
    environ = os.environ if environ is None else environ
    prefix = ENV_PREFIX.lower()
    env: dict[str, str] = {}
    for key, text in environ.items():
        lowered = key.lower()
        if lowered.startswith(prefix):
            if lowered in env:
                return None  # the same variable in two cases
            env[lowered] = text
    values: dict[str, Any] = {}
    try:
        for name, (kind, default) in FIELDS.items():
            given = overrides.get(name)
            if given is None:
                given = env.get(prefix + name)
            if given is not None:
                values[name] = _value(name, kind, given)
            elif kind == "secret":
                values[name] = Secret(default)
            elif name == "data_dir":
                values[name] = default_data_dir()
            else:
                values[name] = default
    except _Unsure:
        return None
    return SettingsValues(values)
