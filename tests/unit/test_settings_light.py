"""The settings every command reads first (``settings_env.read_settings``): the same fields
and limits as ``Settings``, the same values from the same variables, and for anything it
cannot be sure of no answer, so that ``Settings`` gives the value or the error as always."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from shipcaptain.errors import InvalidSettings
from shipcaptain.settings import Settings, load_settings
from shipcaptain.settings_env import FIELDS, LIMITS, Secret, SettingsValues, read_settings

KINDS = {
    "Path": "path",
    "str": "str",
    "SecretStr": "secret",
    "float": "float",
    "int": "int",
    "bool": "bool",
    "Path | None": "path?",
}


def kind_of(annotation: Any) -> str:
    """``Path``, ``Path | None``, ``SecretStr``...: an annotation as the table names it."""
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or re.sub(r"\b[a-z_.]+\.", "", str(annotation))


DERIVED = ("state_url", "audit_key_path", "anchor_path", "rehearsals_path", "log_path")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("SHIPCAPTAIN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def values(settings: Any) -> dict[str, Any]:
    out = {}
    for name in FIELDS:
        value = getattr(settings, name)
        out[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    for name in DERIVED:
        out[name] = getattr(settings, name)
    out["worker_id_or_default"] = settings.worker_id_or_default("server")
    return out


def test_the_fields_are_the_fields_of_settings() -> None:
    assert list(FIELDS) == list(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        kind, default = FIELDS[name]
        assert kind == KINDS[kind_of(field.annotation)], name
        if field.default_factory is not None:
            assert (kind, default) == ("path", None), name
        elif isinstance(field.default, SecretStr):
            assert field.default.get_secret_value() == default, name
        else:
            assert field.default == default, name


def test_the_limits_are_the_limits_of_settings() -> None:
    """Each number field's ``gt``/``ge``/``le`` (pydantic keeps them as annotated-types
    metadata), and no other field has one."""
    declared = {}
    for name, field in Settings.model_fields.items():
        limits = {
            bound: getattr(item, bound)
            for item in field.metadata
            for bound in ("gt", "ge", "lt", "le")
            if getattr(item, bound, None) is not None
        }
        if limits:
            declared[name] = limits
    assert declared == LIMITS
    assert all(FIELDS[name][0] in ("int", "float") for name in LIMITS)


CASES: list[dict[str, str]] = [
    {},
    {"SHIPCAPTAIN_DATABASE_URL": "sqlite:////srv/sc/state.db"},
    {"SHIPCAPTAIN_DATABASE_URL": "postgresql://sc:pw@db:5432/sc", "SHIPCAPTAIN_DATA_DIR": "/srv"},
    {"SHIPCAPTAIN_TOKEN": "sct_abc", "SHIPCAPTAIN_SERVER": "https://sc.example/"},
    {"shipcaptain_database_url": "sqlite:///lower.db", "Shipcaptain_Worker_Id": "w-1"},
    {"SHIPCAPTAIN_DEBUG": "TRUE", "SHIPCAPTAIN_TRUST_PROXY": "no"},
    {"SHIPCAPTAIN_DEBUG": "1", "SHIPCAPTAIN_TRUST_PROXY": "Off"},
    {"SHIPCAPTAIN_AUDIT_KEY_FILE": "keys/audit.pem", "SHIPCAPTAIN_AUDIT_ANCHOR_DIR": "/anchors"},
    {"SHIPCAPTAIN_SLACK_TOKEN": "xoxb-1", "SHIPCAPTAIN_WEBHOOK_URL": "https://hook.example"},
    {"SHIPCAPTAIN_SESSION_KEY": "k", "SHIPCAPTAIN_PUBLIC_URL": "https://sc.example"},
    {"SHIPCAPTAIN_DATA_DIR": "~/sc", "SHIPCAPTAIN_UNKNOWN": "ignored"},
    {"SHIPCAPTAIN_REHEARSALS_DIR": "/srv/rehearsals"},
    {"SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5", "SHIPCAPTAIN_TAKEOVER_AFTER": "3"},
    {"SHIPCAPTAIN_POLL_INTERVAL": "0.05", "SHIPCAPTAIN_WORKER_CONCURRENCY": "2"},
    {"SHIPCAPTAIN_NOTIFY_ATTEMPTS": "20", "SHIPCAPTAIN_NOTIFY_BACKOFF": "0"},
    {"SHIPCAPTAIN_LOGIN_ATTEMPTS": "1", "SHIPCAPTAIN_LOGIN_WINDOW": "86400"},
]


@pytest.mark.parametrize("env", CASES, ids=[" ".join(sorted(c)) or "defaults" for c in CASES])
def test_the_same_values_as_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    light = read_settings()
    assert isinstance(light, SettingsValues)
    assert values(light) == values(load_settings())


def test_cli_options_win_over_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPCAPTAIN_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("SHIPCAPTAIN_SERVER", "http://env.example")
    given: dict[str, Any] = {
        "database_url": "sqlite:///option.db",
        "data_dir": tmp_path / "option",
        "server": None,
        "debug": True,
    }
    light = read_settings(**given)
    assert light is not None
    assert values(light) == values(load_settings(**given))
    assert light.database_url == "sqlite:///option.db"
    assert light.server == "http://env.example"


WRONG = [
    ("SHIPCAPTAIN_DATABASE_URL", "mysql://db/sc"),
    ("SHIPCAPTAIN_SERVER", "sc.example"),
    ("SHIPCAPTAIN_POLL_INTERVAL", "0"),
    ("SHIPCAPTAIN_WORKER_CONCURRENCY", "many"),
    ("SHIPCAPTAIN_DEBUG", "maybe"),
]


@pytest.mark.parametrize(("name", "value"), WRONG, ids=[n for n, _ in WRONG])
def test_a_wrong_value_is_left_to_settings_which_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert read_settings() is None
    with pytest.raises(InvalidSettings, match=f"^{name}:"):
        load_settings()


#: numbers as people write them, and as they should not: every one in every number field
NUMBERS = [
    "0",
    "1",
    "2",
    "8",
    "20",
    "21",
    "30",
    "0.5",
    "0.05",
    "0.1",
    "1.25",
    "2.0",
    "86400",
    "86400.0",
    "86400.5",
    "100000",
    "123456789012345678901234567890",
    "0.30000000000000004",
    "1e3",
    "1E-2",
    "1_000",
    " 5",
    "5 ",
    "+5",
    "-1",
    "-0",
    "05",
    "00",
    "0x10",
    "inf",
    "nan",
    "5.",
    ".5",
    "1.2.3",
    "\u0663",
    "\uff15",
    "",
    "true",
]


@pytest.mark.parametrize("name", list(LIMITS))
def test_a_number_is_read_as_settings_reads_it_or_left_to_it(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Wherever the light reader answers, its value is the one ``Settings`` reads; where
    ``Settings`` refuses a value, the light reader never answers. The plain ones it reads."""
    variable = "SHIPCAPTAIN_" + name.upper()
    answered = set()
    for text in NUMBERS:
        monkeypatch.setenv(variable, text)
        light = read_settings()
        try:
            full = load_settings()
        except InvalidSettings:
            assert light is None, (variable, text)
            continue
        if light is not None:
            answered.add(text)
            assert values(light) == values(full), (variable, text)
            assert type(getattr(light, name)) is type(getattr(full, name)), (variable, text)
    assert {"1", "8", "20"} <= answered, name
    assert not answered & {"1e3", "1_000", " 5", "+5", "05", "0x10", "inf", "5.", ".5"}


def test_a_cli_options_number_is_read_as_given() -> None:
    light = read_settings({}, worker_concurrency=3, notify_backoff=2)
    assert light is not None
    assert (light.worker_concurrency, light.notify_backoff) == (3, 2.0)
    assert isinstance(light.notify_backoff, float)
    assert read_settings({}, worker_concurrency=0) is None  # its limit: Settings says it
    assert read_settings({}, worker_concurrency=True) is None


def test_a_copy_has_the_values_it_was_given_and_the_rest() -> None:
    """``worker --concurrency``: the settings copied with one value changed."""
    light = read_settings({"SHIPCAPTAIN_WORKER_CONCURRENCY": "2", "SHIPCAPTAIN_TOKEN": "t"})
    assert light is not None
    copy = light.model_copy(update={"worker_concurrency": 5})
    assert (copy.worker_concurrency, light.worker_concurrency) == (5, 2)
    assert copy.token == Secret("t")
    with pytest.raises(AttributeError, match="no such settings: concurency"):
        light.model_copy(update={"concurency": 5})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHIPCAPTAIN_TAKEOVER_AFTER", "3e1"),
        ("SHIPCAPTAIN_WORKER_CONCURRENCY", "08"),
        ("SHIPCAPTAIN_DATA_DIR", ""),
    ],
    ids=["a number in an exponent", "a number with a leading zero", "an empty path"],
)
def test_what_it_cannot_be_sure_of_is_read_by_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert read_settings() is None
    assert getattr(load_settings(), name.removeprefix("SHIPCAPTAIN_").lower()) is not None


def test_the_same_variable_in_two_cases_is_left_to_settings() -> None:
    assert read_settings({"SHIPCAPTAIN_TOKEN": "a", "shipcaptain_token": "b"}) is None


def test_secrets_are_never_shown_and_the_values_are_frozen() -> None:
    light = read_settings(
        {"SHIPCAPTAIN_TOKEN": "sct_secret", "SHIPCAPTAIN_SESSION_KEY": "the-session-key"}
    )
    assert light is not None
    assert "sct_secret" not in repr(light)
    assert "the-session-key" not in repr(light)
    assert str(light.token) == "**********"
    assert light.token == SecretStr("sct_secret")
    assert light.token == Secret("sct_secret")
    with pytest.raises(AttributeError, match="frozen"):
        light.token = Secret("other")  # type: ignore[misc]


def test_a_read_command_reports_a_bad_setting_as_every_command_does(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shipcaptain.cli.main import cli

    env = {"SHIPCAPTAIN_DATABASE_URL": "mysql://db/sc", "SHIPCAPTAIN_TOKEN": "sct_x"}
    runner = CliRunner()
    listed = runner.invoke(cli, ["release", "list"], env=env)
    started = runner.invoke(cli, ["release", "cancel", "rel-x", "--reason", "r"], env=env)
    assert listed.exit_code == started.exit_code == 2
    assert "SHIPCAPTAIN_DATABASE_URL: Value error, must start with sqlite:///" in listed.output
    assert listed.output == started.output
