"""The settings of the commands that only read (``settings_env.read_settings``): the same
fields as ``Settings``, the same values from the same variables, and for anything it cannot
be sure of no answer, so that ``Settings`` gives the value or the error as always."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from shipcaptain.errors import InvalidSettings
from shipcaptain.settings import Settings, load_settings
from shipcaptain.settings_env import FIELDS, Secret, SettingsValues, read_settings

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


@pytest.mark.parametrize(
    ("name", "value"),
    [("SHIPCAPTAIN_TAKEOVER_AFTER", "30"), ("SHIPCAPTAIN_DATA_DIR", "")],
    ids=["a number", "an empty path"],
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
