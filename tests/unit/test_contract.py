"""The one client contract: the in-process client (as a person) and the server's client
implement every operation of ``shipcaptain.contract.Service`` with the same signature, so
the CLI holds only the contract and the two cannot drift apart again."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from shipcaptain.contract import OPERATIONS, Service
from shipcaptain.remote import RemoteClient
from shipcaptain.session import LocalSession

IMPLEMENTATIONS = [LocalSession, RemoteClient]
CLI = Path(__file__).resolve().parents[2] / "src" / "shipcaptain" / "cli"


def _shape(function: Any) -> tuple[list[tuple[str, Any, Any, Any]], Any]:
    """A signature as comparable data: each parameter's name, kind, default and
    annotation (text: every module involved postpones its annotations), and the return's."""
    signature = inspect.signature(function)
    parameters = [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]
    return parameters, signature.return_annotation


def test_the_contract_has_the_whole_vocabulary() -> None:
    for word in (
        "start", "show", "events", "status", "decide", "cancel", "resume", "rollback",
        "rollback_preview", "workers", "list_incidents", "open_incident", "team",
        "apply_team", "create_token", "list_tokens", "revoke_token", "verify_audit",
        "anchor_audit", "audit_public_key", "evidence_bundle", "record_migrations",
        "authorize", "runbook_policy", "progress", "step_runs", "active_releases",
        "live_releases", "gates_waiting", "gate_standing", "audit_log", "last_event_seq",
    ):  # fmt: skip
        assert word in OPERATIONS


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", OPERATIONS)
def test_each_operation_has_the_contracts_signature(cls: type, name: str) -> None:
    assert callable(getattr(cls, name, None)), f"{cls.__name__} has no {name}"
    assert _shape(getattr(cls, name)) == _shape(getattr(Service, name))


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_the_acting_person_is_a_property_of_both(cls: type) -> None:
    user = inspect.getattr_static(cls, "user")
    assert isinstance(user, property)
    contract = inspect.getattr_static(Service, "user")
    assert _shape(user.fget) == _shape(contract.fget)


def test_both_are_the_contract_at_run_time() -> None:
    from shipcaptain.records import Person

    sam = Person(name="sam")
    local = LocalSession(None, lambda: sam)  # type: ignore[arg-type]
    assert isinstance(local, Service)
    assert local.user == "sam"
    with RemoteClient("http://127.0.0.1:9", "sct_x") as remote:
        # the check reads `user` (a call to the server): members are looked up statically
        missing = [
            n for n in (*OPERATIONS, "user") if inspect.getattr_static(remote, n, None) is None
        ]
        assert missing == []


def test_the_commands_no_longer_ask_which_client_they_hold() -> None:
    """No command branches on `obj.remote`: it is gone (one place, `_see_through`, asks
    whether this process runs a release or a server's workers do)."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("remote", "reader"):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert found == []


def test_the_commands_never_reach_the_store_past_the_client() -> None:
    """The store is the client's and the engine's: no CLI module reads `.store` of anything
    (a client method says what the command needs)."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "store":
                found.append(f"{path.name}:{node.lineno} .store")
    assert found == []


WEB = CLI.parent / "web"


def _web_modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.name, ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(WEB.glob("*.py"))
    ]


def test_the_web_layer_never_reaches_the_store() -> None:
    """The dashboard and the API read and act through the contract, never the store."""
    found = [
        f"{name}:{node.lineno} .store"
        for name, tree in _web_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    assert found == []


def test_the_web_layer_never_imports_the_cli() -> None:
    """The dashboard renders for itself: what it shares with the CLI (parsing ``name=value``
    parameters, writing a duration) lives below both, in the runbook floor."""
    found = [
        f"{name}:{node.lineno} imports {node.module}"
        for name, tree in _web_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").split(".")[:2] == ["shipcaptain", "cli"]
    ]
    assert found == []


def test_the_web_layer_holds_only_the_contract() -> None:
    """Only the app factory (app.py) names the in-process ``Client``: to make one. Every
    other module holds :class:`Service` (as the person who asks) or :class:`Host`."""
    found = []
    for name, tree in _web_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "shipcaptain.client":
                named = {alias.name for alias in node.names}
                if "Client" in named and name != "app.py":
                    found.append(f"{name}:{node.lineno} imports Client")
            if isinstance(node, ast.Name) and node.id == "Client" and name == "app.py":
                parent_calls = [
                    n
                    for n in ast.walk(tree)
                    if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                    and n.func.id == "Client"
                ]  # fmt: skip
                if not any(n.func is node for n in parent_calls):
                    found.append(f"{name}:{node.lineno} uses Client as a type")
            if isinstance(node, ast.Attribute) and node.attr == "client":
                if isinstance(node.value, ast.Name) and node.value.id == "request":
                    continue  # Starlette's: the address that asks
                found.append(f"{name}:{node.lineno} .client")
    assert found == []


def test_the_in_process_client_is_the_host_of_the_web_layer() -> None:
    from shipcaptain.client import Client
    from shipcaptain.contract import Host

    names = [n for n in vars(Host) if not n.startswith("_") and callable(vars(Host)[n])]
    assert "acting_as" in names
    for name in names:  # the parameters (a return may be narrower: LocalSession is a Service)
        ours, theirs = _shape(getattr(Client, name))[0], _shape(getattr(Host, name))[0]
        assert [p for p in ours if p[0] != "self"] == theirs[1:], name
    assert isinstance(inspect.getattr_static(Client, "registry"), property)


# ---- one filter record for listing releases, the same through every layer --------------------

REFERENCE = CLI.parents[2] / "docs" / "reference"


def test_listing_releases_takes_the_filter_record_in_every_layer() -> None:
    """The contract, both clients, the in-process client and the store take one
    ``ReleaseFilter`` (not its six fields again, each layer with its own defaults)."""
    from shipcaptain.client import Client
    from shipcaptain.store.releases import ReleaseStore

    for layer in (Service, *IMPLEMENTATIONS, Client, ReleaseStore):
        parameters, returns = _shape(layer.list_releases)
        assert [(p[0], p[3]) for p in parameters] == [
            ("self", inspect.Parameter.empty),
            ("which", "ReleaseFilter | None"),
        ], layer.__name__
        assert returns == "list[ReleaseRecord]", layer.__name__


def test_the_api_s_query_parameters_are_the_filter_s_fields() -> None:
    """``GET /releases`` takes the filter's fields by name (the remote client sends them
    so) and nothing else; the published document is generated, and checked current."""
    import json

    from shipcaptain.records import ReleaseFilter

    document = json.loads((REFERENCE / "openapi.json").read_text(encoding="utf-8"))
    parameters = document["paths"]["/api/v1/releases"]["get"]["parameters"]
    assert {p["in"] for p in parameters} == {"query"}
    assert [p["name"] for p in parameters] == [f.name for f in dataclasses.fields(ReleaseFilter)]
    defaults = {p["name"]: p["schema"].get("default") for p in parameters}
    assert defaults == dataclasses.asdict(ReleaseFilter())


def test_the_remote_client_sends_the_filter_as_the_api_s_query() -> None:
    import httpx

    from shipcaptain.records import ReleaseFilter

    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(200, json=[])

    which = ReleaseFilter(
        status="failed", environment="prod", runbook="vc", started_by="ann", limit=7, offset=14
    )
    with RemoteClient("http://server", "sct_x", transport=httpx.MockTransport(answer)) as remote:
        assert remote.list_releases(which) == []
        assert remote.list_releases() == []
    assert dict(asked[0].params) == {k: str(v) for k, v in dataclasses.asdict(which).items()}
    assert dict(asked[1].params) == {"limit": "50"}  # the defaults: the server's own


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"status": "shipped"}, "unknown status 'shipped'; one of: pending, running"),
        ({"limit": 0}, "the limit must be at least 1, not 0"),
        ({"offset": -1}, "the offset must be 0 or more, not -1"),
    ],
)
def test_a_bad_filter_is_a_usage_error(given: dict[str, Any], error: str) -> None:
    from shipcaptain.errors import UsageError
    from shipcaptain.records import ReleaseFilter

    with pytest.raises(UsageError, match=error):
        ReleaseFilter(**given)
