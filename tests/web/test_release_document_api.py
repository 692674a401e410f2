"""``release show --json`` and the API's release detail are one document on real releases
(both databases): waiting at a gate, failed, approved and rolled back, with an incident.
The CLI writes it without pydantic (``shipcaptain.codec.detail_document``, issue 27), the
API through its model (``web.schemas.ReleaseDetail``); each release's view gives the same
text both ways, and the API's answer read back by the remote client (``--server``) gives
its own text again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from helpers.processes import wait_for
from helpers.releases import Harness, write_runbook
from helpers.web import GATED, api_client, bearer, token_for
from shipcaptain.client import ReleaseView
from shipcaptain.codec import detail_document
from shipcaptain.remote import RemoteClient
from shipcaptain.web.schemas import ReleaseDetail

API = "/api/v1"
UNDOABLE = GATED.replace(
    'with: {command: "echo shipped"}}',
    'with: {command: "echo shipped"}, undo: {action: shell, with: {command: "echo undone"}}}',
)
FAILING = GATED.replace('command: "echo built"', 'command: "echo broken >&2; exit 3"')


@pytest.fixture
def api(h: Harness, tmp_path: Path) -> Iterator[TestClient]:
    for name, text in (("gated.yaml", GATED), ("undoable.yaml", UNDOABLE)):
        write_runbook(tmp_path, text, name)
    write_runbook(tmp_path, FAILING, "failing.yaml")
    with api_client(h, tmp_path) as client:
        yield client


def start(api: TestClient, auth: dict[str, str], runbook: str) -> str:
    answer = api.post(f"{API}/releases", json={"runbook_path": runbook}, headers=auth)
    assert answer.status_code == 201, answer.text
    release: str = answer.json()["id"]
    return release


def reach(api: TestClient, auth: dict[str, str], release: str, *statuses: str) -> None:
    def reached() -> bool:
        status = api.get(f"{API}/releases/{release}/status", headers=auth).json()
        return status["status"] in statuses and (
            "waiting" not in statuses or bool(status["waiting"])
        )

    wait_for(reached, 60, what=f"release {release} {statuses}")


class Through(httpx.BaseTransport):
    """The remote client's requests, answered by the application in this process."""

    def __init__(self, app: TestClient) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.app.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def same_document(view: ReleaseView) -> dict[str, Any]:
    """The view's document both ways, checked equal as text; the document."""
    ours = detail_document(view)
    theirs = ReleaseDetail.of(view).model_dump(mode="json")
    assert json.dumps(ours, indent=2) == json.dumps(theirs, indent=2)
    return ours


def test_show_json_is_the_api_s_document_on_real_releases(
    h: Harness, api: TestClient, tmp_path: Path
) -> None:
    casey, sam = (token_for(h.client.store, name) for name in ("casey", "sam"))
    as_casey, as_sam = bearer(casey), bearer(sam)

    waiting = start(api, as_casey, "gated.yaml")
    failed = start(api, as_casey, "failing.yaml")
    rolled = start(api, as_casey, "undoable.yaml")
    reach(api, as_casey, waiting, "waiting")
    reach(api, as_casey, failed, "failed")
    reach(api, as_casey, rolled, "waiting")
    api.post(f"{API}/releases/{rolled}/gates/go_ahead/approve", json={}, headers=as_sam)
    reach(api, as_casey, rolled, "succeeded")
    asked = api.post(
        f"{API}/releases/{rolled}/rollback", json={"reason": "error rate up"}, headers=as_casey
    )
    assert asked.status_code == 202, asked.text
    reach(api, as_casey, rolled, "rolling_back", "waiting")
    gate = f"{API}/releases/{rolled}/gates/rollback/approval/approve"
    wait_for(
        lambda: api.post(gate, json={"comment": "go"}, headers=as_sam).status_code == 200,
        60,
        what="the rollback's approval",
    )
    reach(api, as_casey, rolled, "rolled_back")
    opened = api.post(
        f"{API}/incidents",
        json={"severity": "P1", "summary": "checkout returns 502", "release": failed},
        headers=as_sam,
    )
    assert opened.status_code == 201, opened.text

    shown = {r: same_document(h.client.show(r)) for r in (waiting, failed, rolled)}
    # what each case holds: the comparison above saw every part of the document
    assert [s["status"] for s in shown[waiting]["steps"]] == ["succeeded", "waiting", "pending"]
    assert shown[waiting]["steps"][2]["run"] is None
    assert shown[failed]["release"]["status"] == "failed"
    assert shown[failed]["steps"][0]["status"] == "failed"
    assert [i["summary"] for i in shown[failed]["incidents"]] == ["checkout returns 502"]
    assert any(s["id"].startswith("rollback/") for s in shown[rolled]["steps"])
    assert {d["step_id"] for d in shown[rolled]["decisions"]} == {
        "go_ahead",
        "rollback/approval",
    }
    assert all(doc["engine"] is not None and doc["events"] for doc in shown.values())

    # the API's answer, read by the remote client (``--server``), gives its text again
    with RemoteClient("http://testserver", sam, transport=Through(api)) as remote:
        answers: dict[str, Any] = {}
        call = remote._call

        def recording(method: str, path: str, **kw: Any) -> Any:
            answers[path] = answer = call(method, path, **kw)
            return answer

        remote._call = recording  # type: ignore[method-assign]
        for release in (waiting, failed, rolled):
            view = remote.show(release)
            assert json.dumps(detail_document(view)) == json.dumps(answers[f"/releases/{release}"])
