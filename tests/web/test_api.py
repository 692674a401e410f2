"""The REST API in this process (FastAPI's TestClient) on both databases: every call the
CLI can make, the same permission checks, one error shape, and authentication everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers.databases import tamper_with_events
from helpers.processes import wait_for
from helpers.releases import Harness, write_runbook
from helpers.web import GATED, api_client, bearer, token_for

API = "/api/v1"


@pytest.fixture
def api(h: Harness, tmp_path: Path) -> Iterator[TestClient]:
    write_runbook(tmp_path, GATED, "gated.yaml")
    with api_client(h, tmp_path) as client:
        yield client


@pytest.fixture
def tokens(h: Harness) -> dict[str, dict[str, str]]:
    return {name: bearer(token_for(h.client.store, name)) for name in ("casey", "sam", "fola")}


def start(api: TestClient, as_: dict[str, str], **body: Any) -> dict[str, Any]:
    response = api.post(f"{API}/releases", json={"runbook_path": "gated.yaml", **body}, headers=as_)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_for_status(api: TestClient, auth: dict[str, str], release: str, *statuses: str) -> None:
    def reached() -> bool:
        return (
            api.get(f"{API}/releases/{release}/status", headers=auth).json()["status"] in statuses
        )

    wait_for(reached, 60, what=f"release {release} {statuses}")


def test_every_endpoint_refuses_a_request_without_a_valid_token(api: TestClient) -> None:
    paths = api.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert len(paths) >= 10
    for path, methods in paths.items():
        concrete = path.replace("{release_id}", "rel-x").replace("{step_id}", "gate")
        method = "get" if "get" in methods else "post"
        for headers in ({}, bearer("sct_not-a-token"), {"Authorization": "Basic abc"}):
            response = api.request(method, concrete, headers=headers, json={})
            assert response.status_code == 401, (path, headers, response.text)
            assert response.json()["error"]["code"] == "SC410"
            assert response.headers["www-authenticate"] == "Bearer"


def test_applications_share_the_routes_their_routers_made(api: TestClient) -> None:
    """A second application serves the routes the routers made at import, not copies built
    again (FastAPI's include_router builds every route again for each application, at its
    first request: ~90 ms of CPU each, benchmarks/app_first_request.py), and its API
    still refuses a request without a token."""
    from shipcaptain.web import api as api_module
    from shipcaptain.web import pages
    from shipcaptain.web.app import create_app

    first: Any = api.app
    second = create_app(first.state.web.settings, session_key="another")
    for app in (first, second):
        served = {id(route) for route in app.routes}
        for router in (api_module.router, pages.router):
            assert {id(route) for route in router.routes} <= served
    with TestClient(second) as other:
        response = other.get(f"{API}/releases")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "SC410"


def test_start_show_approve_and_finish_a_release(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    created = start(api, tokens["casey"], params={"environment": "staging"})
    assert (created["status"], created["started_by"], created["environment"]) == (
        "pending",
        "casey",
        "staging",
    )
    release = created["id"]
    wait_for_status(api, tokens["casey"], release, "waiting")
    status = api.get(f"{API}/releases/{release}/status", headers=tokens["sam"]).json()
    assert status["waiting"] == ["go_ahead"]
    assert status["steps"]["build"] == "succeeded"

    shown = api.get(f"{API}/releases/{release}", headers=tokens["sam"]).json()
    assert [s["id"] for s in shown["steps"]] == ["build", "go_ahead", "ship"]
    assert shown["steps"][0]["outputs"] or shown["steps"][0]["summary"]
    assert [g["step_id"] for g in shown["gates"] if g["status"] == "waiting"] == ["go_ahead"]
    assert shown["events"][0]["kind"] == "release.created"
    assert "runbook_text" not in shown["release"]
    assert "workdir" not in shown["release"]

    decided = api.post(
        f"{API}/releases/{release}/gates/go_ahead/approve",
        json={"comment": "dashboards green"},
        headers=tokens["sam"],
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "recorded"
    assert decided.json()["user"] == "sam"
    wait_for_status(api, tokens["casey"], release, "succeeded")

    listed = api.get(f"{API}/releases", params={"status": "succeeded"}, headers=tokens["fola"])
    assert [r["id"] for r in listed.json()] == [release]
    events = api.get(f"{API}/releases/{release}/events", headers=tokens["fola"]).json()
    assert any(e["kind"].startswith("gate.") and e["actor"] == "sam" for e in events)
    after = events[-2]["seq"]
    tail = api.get(f"{API}/releases/{release}/events?after={after}", headers=tokens["fola"])
    assert [e["seq"] for e in tail.json()] == [events[-1]["seq"]]
    assert "ship it?" in api.get(f"{API}/releases/{release}/runbook", headers=tokens["fola"]).text


def test_the_same_permission_checks_as_the_cli(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    release = start(api, tokens["sam"])["id"]
    wait_for_status(api, tokens["sam"], release, "waiting")
    own = api.post(
        f"{API}/releases/{release}/gates/go_ahead/approve", json={}, headers=tokens["sam"]
    )
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "SC400"
    assert "separation of duties" in own.json()["error"]["message"]
    other = api.post(
        f"{API}/releases/{release}/gates/go_ahead/approve", json={}, headers=tokens["fola"]
    )
    assert other.status_code == 403
    assert "needs role oncall_sre" in other.json()["error"]["message"]
    rejected = api.post(
        f"{API}/releases/{release}/gates/go_ahead/reject",
        json={"comment": "not today", "role": "release_captain"},
        headers=tokens["casey"],
    )
    assert rejected.status_code == 403  # casey holds release_captain, the gate needs the SRE
    cancelled = api.post(
        f"{API}/releases/{release}/cancel", json={"reason": "test over"}, headers=tokens["casey"]
    )
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(
        f"{API}/releases/{release}/cancel", json={"reason": "again"}, headers=tokens["casey"]
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "SC500")


def test_a_cancelled_release_resumes_in_a_new_run(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    release = start(api, tokens["casey"])["id"]
    wait_for_status(api, tokens["casey"], release, "waiting")
    api.post(f"{API}/releases/{release}/cancel", json={"reason": "later"}, headers=tokens["casey"])
    resumed = api.post(f"{API}/releases/{release}/resume", headers=tokens["casey"])
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["kind"], resumed.json()["run"]) == ("new_run", 2)
    wait_for_status(api, tokens["casey"], release, "waiting")
    api.post(f"{API}/releases/{release}/gates/go_ahead/approve", json={}, headers=tokens["sam"])
    wait_for_status(api, tokens["casey"], release, "succeeded")


def test_errors_have_one_shape(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    casey = tokens["casey"]
    missing = api.get(f"{API}/releases/rel-nope", headers=casey)
    assert missing.status_code == 404
    assert set(missing.json()) == {"error"}
    assert missing.json()["error"]["code"] == "SC300"
    bad_status = api.get(f"{API}/releases?status=sideways", headers=casey)
    assert (bad_status.status_code, bad_status.json()["error"]["code"]) == (422, "SC200")
    bad_body = api.post(f"{API}/releases", json={"runbook_path": 3}, headers=casey)
    assert bad_body.status_code == 422
    assert bad_body.json()["error"]["field"] == "runbook_path"
    outside = api.post(f"{API}/releases", json={"runbook_path": "../../etc/passwd"}, headers=casey)
    assert outside.status_code == 422
    assert "outside the server's runbook directory" in outside.json()["error"]["message"]
    both = api.post(
        f"{API}/releases", json={"runbook_path": "a", "runbook_yaml": "b"}, headers=casey
    )
    assert "exactly one" in both.json()["error"]["message"]
    no_route = api.get(f"{API}/nothing-here", headers=casey)
    assert (no_route.status_code, no_route.json()["error"]["code"]) == (404, "SC300")


def test_a_body_value_of_another_json_type_is_refused_not_converted(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    # found by the schema fuzzing: `true` was taken for 1 second, a token that expired at once
    sam = tokens["sam"]
    before = api.get(f"{API}/tokens", headers=sam).json()
    flag = api.post(f"{API}/tokens", json={"expires_in_s": True, "label": "x"}, headers=sam)
    assert (flag.status_code, flag.json()["error"]["field"]) == (422, "expires_in_s")
    text = api.post(f"{API}/tokens", json={"expires_in_s": "60", "label": "x"}, headers=sam)
    assert text.status_code == 422
    assert api.get(f"{API}/tokens", headers=sam).json() == before  # neither made one
    # a whole number of seconds is a number as the schema says
    made = api.post(f"{API}/tokens", json={"expires_in_s": 60, "label": "x"}, headers=sam)
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"] is not None


def test_an_uploaded_runbook_with_a_mistake_names_the_line_and_field(
    api: TestClient, tokens: dict[str, dict[str, str]], h: Harness
) -> None:
    broken = GATED.replace("roles: [oncall_sre]", "roles: [nobody]")
    response = api.post(f"{API}/releases", json={"runbook_yaml": broken}, headers=tokens["casey"])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "SC100"
    assert error["message"].startswith("runbook_yaml:14: ")
    assert "unknown role 'nobody'" in error["message"]
    assert error["field"] == "phases[1].steps[0].with.roles[0]"
    assert h.client.list_releases() == []  # nothing half-applied


def test_an_uploaded_runbook_runs(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    created = start(api, tokens["casey"], runbook_path=None, runbook_yaml=GATED)
    wait_for_status(api, tokens["casey"], created["id"], "waiting")
    api.post(f"{API}/releases/{created['id']}/cancel", json={"reason": "x"}, headers=tokens["sam"])


def test_workers_and_me(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    assert api.get(f"{API}/me", headers=tokens["fola"]).json() == {"name": "fola"}
    found = api.get(f"{API}/workers", headers=tokens["fola"]).json()
    assert [w["executor_id"] for w in found] == ["test-engine"]
    assert found[0]["alive"] is True


def test_the_audit_log_pages_filters_and_verifies(
    api: TestClient, tokens: dict[str, dict[str, str]], h: Harness, engine_database_url: str
) -> None:
    first = start(api, tokens["casey"])["id"]
    second = start(api, tokens["casey"])["id"]
    for release in (first, second):
        wait_for_status(api, tokens["casey"], release, "waiting")
    # the gate's own event follows the release's change to waiting: wait for both gates'
    everything: list[dict[str, Any]] = []

    def both_opened() -> bool:
        everything[:] = api.get(f"{API}/audit", headers=tokens["fola"]).json()
        opened = {e["release_id"] for e in everything if e["kind"].endswith(".opened")}
        return {first, second} <= opened

    wait_for(both_opened, 30, what="both gates' events")
    assert {e["release_id"] for e in everything} == {None, first, second}  # None: team, tokens
    assert "token.created" in {e["kind"] for e in everything}
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs)
    page = api.get(f"{API}/audit?after={seqs[1]}&limit=2", headers=tokens["fola"]).json()
    assert [e["seq"] for e in page] == seqs[2:4]
    only = api.get(f"{API}/audit", params={"release": first}, headers=tokens["fola"]).json()
    assert {e["release_id"] for e in only} == {first}
    check = api.get(f"{API}/audit/verify", headers=tokens["fola"]).json()
    assert check == {
        "ok": True,
        "events_checked": len(everything),
        "broken_seq": None,
        "reason": None,
        "anchors_checked": 0,  # no release ended yet: nothing anchored
        "anchored": 0,
        "broken_anchor": None,
        "keyed": True,
    }
    tamper_with_events(
        engine_database_url,
        "UPDATE sc_events SET message = 'nothing to see' WHERE seq = :s",
        s=seqs[2],
    )
    broken = api.get(f"{API}/audit/verify", headers=tokens["fola"]).json()
    assert (broken["ok"], broken["broken_seq"]) == (False, seqs[2])
    for release in (first, second):
        api.post(f"{API}/releases/{release}/cancel", json={"reason": "x"}, headers=tokens["casey"])


def test_an_event_number_beyond_64_bits_is_invalid_input(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    # found by schemathesis: SQLite cannot take it, and that was a server error
    for path in (f"{API}/audit", f"{API}/releases/rel-x/events"):
        answer = api.get(path, params={"after": 2**63}, headers=tokens["fola"])
        assert (answer.status_code, answer.json()["error"]["field"]) == (422, "query.after")


def test_a_release_is_rolled_back_through_the_api(
    api: TestClient, tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    undoable = GATED.replace(
        'with: {command: "echo shipped"}}',
        'with: {command: "echo shipped"}, undo: {action: shell, with: {command: "echo undone"}}}',
    )
    assert undoable != GATED
    write_runbook(tmp_path, undoable, "undoable.yaml")
    release = start(api, tokens["casey"], runbook_path="undoable.yaml")["id"]
    wait_for_status(api, tokens["casey"], release, "waiting")
    api.post(f"{API}/releases/{release}/gates/go_ahead/approve", json={}, headers=tokens["sam"])
    wait_for_status(api, tokens["casey"], release, "succeeded")

    asked = api.post(
        f"{API}/releases/{release}/rollback",
        json={"reason": "error rate up"},
        headers=tokens["casey"],
    )
    assert asked.status_code == 202, asked.text
    assert (asked.json()["status"], asked.json()["approve_with"]) == ("queued", "rollback/approval")
    status = f"{API}/releases/{release}/status"
    wait_for(
        lambda: api.get(status, headers=tokens["sam"]).json()["waiting"] == ["rollback/approval"],
        60,
        what="the rollback's approval gate",
    )
    # the initiator may not approve; an on-call SRE may
    gate = f"{API}/releases/{release}/gates/rollback/approval/approve"
    own = api.post(gate, json={}, headers=tokens["casey"])
    assert own.status_code == 403, own.text
    assert api.post(gate, json={}, headers=tokens["sam"]).status_code == 200
    wait_for_status(api, tokens["casey"], release, "rolled_back")


def test_incidents_are_opened_acknowledged_and_mitigated_through_the_api(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    opened = api.post(
        f"{API}/incidents",
        json={"severity": "P1", "summary": "checkout returns 502"},
        headers=tokens["sam"],
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert (incident["status"], incident["opened_by"]) == ("open", "sam")
    assert incident["clocks"].startswith("acknowledge by ")
    path = f"{API}/incidents/{incident['id']}"
    acked = api.post(f"{path}/acknowledge", json={}, headers=tokens["sam"]).json()
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "sam")
    done = api.post(f"{path}/mitigate", json={"note": "flag off"}, headers=tokens["casey"])
    assert (done.json()["status"], done.json()["mitigation"]) == ("mitigated", "flag off")
    listed = api.get(f"{API}/incidents", headers=tokens["fola"]).json()
    assert [i["id"] for i in listed] == [incident["id"]]
    assert api.get(path, headers=tokens["fola"]).json()["mitigated_by"] == "casey"
    wrong = api.post(f"{path}/escalate", json={}, headers=tokens["sam"])
    assert wrong.status_code == 422
    unknown = api.get(f"{API}/incidents/inc-nope", headers=tokens["sam"])
    assert unknown.status_code == 404, unknown.text
