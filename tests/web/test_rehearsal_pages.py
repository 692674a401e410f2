"""The dashboard's Rehearsals pages: the rehearsals ``rehearse`` kept (in the settings'
rehearsals directory), read through the client, each with its scorecard, the checks that
would have caught what it missed, its evidence bundles and its Markdown report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers.rehearsals import kept_rehearsal
from helpers.releases import Harness
from helpers.web import api_client, sign_in, token_for


@pytest.fixture
def web(h: Harness, tmp_path: Path) -> Iterator[TestClient]:
    with api_client(h, tmp_path) as client:
        yield client


def test_the_rehearsals_are_listed_and_each_shows_its_scorecard_and_evidence(
    web: TestClient, h: Harness, tmp_path: Path
) -> None:
    rid = kept_rehearsal(h.settings, tmp_path, "valuecanvas.yaml")
    for page in ("/rehearsals", f"/rehearsals/{rid}"):  # signed-in people only
        assert web.get(page, follow_redirects=False).status_code == 303
    sign_in(web, token_for(h.client.store, "sam"))
    listing = web.get("/rehearsals")
    assert listing.status_code == 200
    assert f'href="/rehearsals/{rid}"' in listing.text
    assert "valuecanvas.yaml" in listing.text
    assert "2 of 3 caught" in listing.text
    assert '<span class="badge failed">replica_lag</span>' in listing.text
    assert '<a href="/rehearsals">Rehearsals</a>' in listing.text  # in the top navigation
    page = web.get(f"/rehearsals/{rid}")
    assert page.status_code == 200
    html = page.text
    assert '<span class="badge succeeded">caught</span>' in html
    assert '<span class="badge waiting">caught late</span>' in html
    assert '<span class="badge failed">missed</span>' in html
    assert "<strong>replica_lag</strong> (missed): a `metrics` step after the rollout" in html
    assert "2 of 3 faults caught, 1 missed" in html  # report.md, as rehearse wrote it
    evidence = f"/rehearsals/{rid}/evidence/rel-error_rate.md"
    assert f'href="{evidence}"' in html
    shown = web.get(evidence)
    assert shown.text == "# Evidence of rel-error_rate\n"
    assert shown.headers["content-type"].startswith("text/plain")
    assert web.get(f"/rehearsals/{rid}/report.json").json()["missed"] == ["replica_lag"]


def test_an_unknown_rehearsal_or_file_is_not_found(
    web: TestClient, h: Harness, tmp_path: Path
) -> None:
    rid = kept_rehearsal(h.settings, tmp_path)
    sign_in(web, token_for(h.client.store, "sam"))
    assert web.get("/rehearsals/20261204T000000Z-nope-000000").status_code == 404
    assert web.get(f"/rehearsals/{rid}/report.md").status_code == 404  # not evidence
    assert web.get(f"/rehearsals/{rid}/evidence/..%2F..%2Freport.md").status_code == 404


def test_no_rehearsal_yet_says_how_to_keep_one(web: TestClient, h: Harness) -> None:
    sign_in(web, token_for(h.client.store, "sam"))
    page = web.get("/rehearsals")
    assert "No rehearsal kept yet" in page.text
    assert str(h.settings.rehearsals_path) in page.text
