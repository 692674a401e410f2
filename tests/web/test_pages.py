"""The dashboard's pages in this process: signing in, the session cookie, CSRF on every
form, the pages themselves and their live stream."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers.cockpit import finished_releases
from helpers.releases import Harness, write_runbook
from helpers.web import GATED, api_client, csrf_in, sign_in, token_for
from shipcaptain.identity import revoke_token
from shipcaptain.web.app import create_app

PAGES = [
    "/",
    "/releases",
    "/releases/rel-x",
    "/workers",
    "/releases/rel-x/live",
    "/releases-live",
    "/incidents",
    "/incidents-live",
    "/workers-live",
]


@pytest.fixture
def web(h: Harness, tmp_path: Path) -> Iterator[TestClient]:
    write_runbook(tmp_path, GATED, "gated.yaml")
    with api_client(h, tmp_path) as client:
        yield client


def test_every_page_sends_a_stranger_to_the_sign_in_form(web: TestClient) -> None:
    for page in PAGES:
        response = web.get(page, follow_redirects=False)
        assert response.status_code == 303, page
        assert response.headers["location"].startswith("http://testserver/login?next=")


def test_signing_in_sets_a_strict_http_only_signed_cookie(web: TestClient, h: Harness) -> None:
    token = token_for(h.client.store, "sam")
    cookie = sign_in(web, token, next="/workers")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http in this test; https sets Secure
    page = web.get("/workers")
    assert page.status_code == 200
    assert "test-engine" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert token not in page.text  # no secret in any page


def test_a_forged_or_wrong_sign_in_is_refused(web: TestClient, h: Harness) -> None:
    token = token_for(h.client.store, "sam")
    form = web.get("/login")
    wrong = web.post(
        "/login", data={"token": "sct_wrong", "csrf_token": csrf_in(form.text), "next": "/"}
    )
    assert "unknown token" in wrong.text
    assert "shipcaptain_session" not in wrong.headers.get("set-cookie", "")
    forged = web.post("/login", data={"token": token, "csrf_token": "guess", "next": "/"})
    assert "expired" in forged.text
    assert "shipcaptain_session" not in forged.headers.get("set-cookie", "")
    web.cookies.set("shipcaptain_session", "tampered.value")
    assert web.get("/releases", follow_redirects=False).status_code == 303


def test_an_open_redirect_is_not_possible(web: TestClient, h: Harness) -> None:
    form = web.get("/login")
    response = web.post(
        "/login",
        data={
            "token": token_for(h.client.store, "sam"),
            "csrf_token": csrf_in(form.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/releases"


def test_a_form_without_the_csrf_token_changes_nothing(web: TestClient, h: Harness) -> None:
    sign_in(web, token_for(h.client.store, "casey"))
    started = web.post("/releases", data={"runbook": "gated.yaml"}, follow_redirects=False)
    assert started.status_code == 403
    assert "SC411" in started.text
    assert h.client.list_releases() == []
    page = web.get("/releases")
    ok = web.post(
        "/releases",
        data={
            "runbook": "gated.yaml",
            "params": "environment=staging",
            "csrf_token": csrf_in(page.text),
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    [release] = h.client.list_releases()
    assert ok.headers["location"] == f"/releases/{release.id}"
    assert (release.started_by, release.environment) == ("casey", "staging")
    h.client.cancel(release.id, user="casey", reason="test over")


def test_the_release_page_offers_the_gate_to_whom_may_decide(web: TestClient, h: Harness) -> None:
    release = h.start(h.workdir.parent / "gated.yaml")
    h.wait_for_gate(release.id, "go_ahead")
    sign_in(web, token_for(h.client.store, "casey"))
    as_starter = web.get(f"/releases/{release.id}").text
    assert "separation of duties" in as_starter
    assert "/gates/go_ahead/approve" not in as_starter
    web.cookies.clear()
    sign_in(web, token_for(h.client.store, "sam"))
    page = web.get(f"/releases/{release.id}").text
    assert 'id="step-build"' in page
    assert 'data-status="succeeded"' in page
    assert f'action="/releases/{release.id}/gates/go_ahead/approve"' in page
    assert "ship it?" in page
    # the page's script sends the form with the token in a header and stays on the page
    answer = web.post(
        f"/releases/{release.id}/gates/go_ahead/approve",
        data={"comment": "looks good"},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf_in(page)},
    )
    assert answer.json() == {"ok": True, "message": "Your approval of go_ahead is recorded."}
    assert h.wait(release.id).status == "succeeded"
    [decision] = h.client.store.list_decisions(release.id, "go_ahead")
    assert (decision.user, decision.comment) == ("sam", "looks good")


def test_a_refused_decision_from_the_page_script_is_a_json_error(
    web: TestClient, h: Harness
) -> None:
    release = h.start(h.workdir.parent / "gated.yaml")
    h.wait_for_gate(release.id, "go_ahead")
    sign_in(web, token_for(h.client.store, "casey"))
    page = web.get(f"/releases/{release.id}").text
    answer = web.post(
        f"/releases/{release.id}/gates/go_ahead/approve",
        headers={"Accept": "application/json", "X-CSRF-Token": csrf_in(page)},
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "SC400"
    h.client.cancel(release.id, user="casey", reason="test over")


def test_the_live_stream_sends_the_parts_and_ends_with_the_release(
    web: TestClient, h: Harness
) -> None:
    release = h.start(h.workdir.parent / "gated.yaml")
    h.wait_for_gate(release.id, "go_ahead")
    h.client.cancel(release.id, user="casey", reason="seen enough")
    sign_in(web, token_for(h.client.store, "sam"))
    with web.stream("GET", f"/releases/{release.id}/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    events = re.findall(r"^event: (\w+)$", body, re.M)
    assert events == ["summary", "dag", "gates", "comms", "timeline", "end"]
    assert "cancelled" in body


def test_filters_of_the_releases_page(web: TestClient, h: Harness) -> None:
    release = h.start(h.workdir.parent / "gated.yaml")
    h.wait_for_gate(release.id, "go_ahead")
    sign_in(web, token_for(h.client.store, "sam"))
    assert release.id in web.get("/releases?environment=staging&status=waiting").text
    assert release.id not in web.get("/releases?environment=production").text
    assert release.id not in web.get("/releases?status=succeeded").text
    h.client.cancel(release.id, user="casey", reason="test over")


def test_over_https_the_cookie_is_secure_and_signing_out_ends_the_session(
    h: Harness, tmp_path: Path
) -> None:
    app = create_app(h.settings, client=h.client, runbook_root=tmp_path)
    with TestClient(app, base_url="https://testserver") as web:
        cookie = sign_in(web, token_for(h.client.store, "sam"))
        assert "Secure" in cookie
        page = web.get("/workers")
        assert page.status_code == 200
        out = web.post("/logout", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert 'shipcaptain_session=""' in out.headers["set-cookie"]
        assert web.get("/workers", follow_redirects=False).status_code == 303


def test_the_audit_page_lists_the_events_and_checks_the_chain(web: TestClient, h: Harness) -> None:
    release = h.start(h.workdir.parent / "gated.yaml")
    h.wait_for_gate(release.id, "go_ahead")
    sign_in(web, token_for(h.client.store, "fola"))
    page = web.get("/audit").text
    assert "release.created" in page
    assert f'href="/releases/{release.id}"' in page
    assert "The chain is" not in page
    checked = web.get("/audit?verify=1").text
    assert "The chain is intact" in checked
    with web.stream("GET", "/audit-live") as stream:
        first = next(stream.iter_lines())
        assert first == "retry: 2000"
    h.client.cancel(release.id, user="casey", reason="test over")


def test_a_revoked_token_ends_its_session(web: TestClient, h: Harness) -> None:
    token = token_for(h.client.store, "sam")
    sign_in(web, token)
    assert web.get("/workers", follow_redirects=False).status_code == 200
    [record] = [t for t in h.client.store.list_tokens("sam") if t.state() == "active"]
    revoke_token(h.client.store, record.id, by=h.client.store.get_person("sam"))
    assert web.get("/workers", follow_redirects=False).status_code == 303
    api = web.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert "was revoked" in api.json()["error"]["message"]


def test_the_incidents_page_counts_the_sla_clocks_down(web: TestClient, h: Harness) -> None:
    sign_in(web, token_for(h.client.store, "sam"), next="/incidents")
    page = web.get("/incidents")
    assert "No incidents." in page.text
    opened = web.post(
        "/incidents",
        data={"severity": "P1", "summary": "login fails", "csrf_token": csrf_in(page.text)},
        follow_redirects=False,
    )
    assert opened.status_code == 303, opened.text
    (incident,) = h.client.store.list_incidents()
    page = web.get("/incidents").text
    assert "login fails" in page
    # both clocks tick in the page until someone acts
    assert f'data-until="{incident.acknowledge_by.isoformat()}"' in page
    assert f'data-until="{incident.mitigate_by.isoformat()}"' in page
    acked = web.post(
        f"/incidents/{incident.id}/acknowledge",
        data={"csrf_token": csrf_in(page)},
        follow_redirects=False,
    )
    assert acked.status_code == 303, acked.text
    page = web.get("/incidents").text
    assert "acknowledged by sam" in page
    assert f'data-until="{incident.acknowledge_by.isoformat()}"' not in page
    with web.stream("GET", "/incidents-live") as stream:
        assert next(stream.iter_lines()) == "retry: 2000"


def test_the_release_page_shows_a_message_that_was_not_delivered(
    web: TestClient, h: Harness, tmp_path: Path
) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: told
        phases:
          - id: ship
            steps:
              - {id: ship, action: shell, with: {command: "true"}}
        comms:
          templates: {complete: "Shipped."}
        """,
        "told.yaml",
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "succeeded"
    sign_in(web, token_for(h.client.store, "casey"))
    page = web.get(f"/releases/{release.id}").text
    comms = page.split('<section id="comms">')[1].split("</section>")[0]
    assert "comms.complete" in comms
    assert "(no channel)" in comms
    assert "NOT SENT" in comms
    assert "Shipped." in comms
    assert "1 notification not delivered" in page  # the release's summary says so


VERSIONED = GATED.replace(
    "parameters:\n  environment: {default: staging}\n",
    "parameters:\n  environment: {default: staging}\n  version: {default: 0.0.1}\n",
)


def table_rows(html: str) -> list[str]:
    """The releases of the home page's table, in order."""
    return re.findall(r'<tr class="status-\w+">\s*<td><a href="/releases/(rel-[0-9a-f]+)"', html)


def test_the_home_page_pages_and_filters_by_runbook_environment_status_and_person(
    web: TestClient, h: Harness, tmp_path: Path
) -> None:
    gated = write_runbook(tmp_path, VERSIONED, "versioned.yaml")
    other = write_runbook(tmp_path, VERSIONED.replace("name: gated", "name: other"), "o.yaml")
    token = token_for(h.client.store, "sam")
    old = finished_releases(h.client, gated, 55, user="dana")
    prod = finished_releases(h.client, other, 2, user="erin", environment="production")
    sign_in(web, token)
    first = web.get("/releases").text
    rows = table_rows(first)
    assert len(rows) == 50  # a page
    assert rows[0] == prod[-1].id  # newest first
    assert 'href="/releases?runbook=&amp;environment=&amp;status=&amp;person=&amp;page=2"' in first
    second = web.get("/releases?page=2").text
    assert table_rows(second) == [r.id for r in reversed(old[:7])]  # the rest, no cap
    assert "Older releases" not in second
    assert "Newer releases" in second
    by_runbook = web.get("/releases?runbook=other").text
    assert prod[0].id in by_runbook
    assert old[0].id not in by_runbook
    by_person = web.get("/releases?person=erin&environment=production").text
    assert prod[1].id in by_person
    assert old[-1].id not in by_person
    assert table_rows(web.get("/releases?person=erin&environment=staging").text) == []
    # what is live: of each runbook in each environment, the newest that succeeded
    live = first.split('<section id="live-now"')[1].split("</section>")[0]
    assert f'href="/releases/{old[-1].id}"' in live
    assert f'href="/releases/{prod[-1].id}"' in live
    assert "1.0.54" in live
    assert "1.0.1" in live
    assert "erin" in live
    assert old[0].id not in live
    assert web.get("/releases?page=0").status_code == 422


def test_the_release_stream_sends_only_what_changed(web: TestClient, h: Harness) -> None:
    release = h.start(h.workdir.parent / "gated.yaml")
    h.wait_for_gate(release.id, "go_ahead")
    sign_in(web, token_for(h.client.store, "sam"))
    events: list[str] = []
    with web.stream("GET", f"/releases/{release.id}/live") as stream:
        lines = stream.iter_lines()
        for line in lines:
            if line.startswith("event: "):
                events.append(line[7:])
            if line == "" and events[-1:] == ["timeline"]:
                break  # the page's parts, once
        first = list(events)
        decided = threading.Thread(
            target=h.client.decide,
            args=(release.id, "go_ahead"),
            kwargs={"user": "sam", "decision": "approve"},
        )
        decided.start()
        patches: list[str] = []
        expect_target = False
        for line in lines:
            if line.startswith("event: "):
                events.append(line[7:])
                expect_target = line[7:] in ("patch", "append")
            elif line.startswith("data: ") and expect_target:
                patches.append(f"{events[-1]} {line[6:]}")
                expect_target = False
        decided.join()
    assert first == ["summary", "dag", "gates", "comms", "timeline"]
    later = events[5:]
    assert "dag" not in later  # never the whole graph again
    assert later[-1] == "end"
    assert "patch step-go_ahead" in patches
    assert "patch step-ship" in patches
    assert "patch step-build" not in patches  # it did not change
    assert "append timeline-list" in patches
    assert "timeline" not in later  # new entries only


def test_the_workers_page_is_live(web: TestClient, h: Harness) -> None:
    sign_in(web, token_for(h.client.store, "sam"))
    assert 'data-live="/workers-live"' in web.get("/workers").text
    with web.stream("GET", "/workers-live") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(lines) == ""
        assert next(lines) == "event: workers"
        assert "test-engine" in next(lines)
