"""A running step's log on the release page: its lines appear while the step runs, with
the search box, through the release's live stream."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers.releases import Harness, write_runbook
from helpers.web import ROLES, api_client, sign_in, token_for
from shipcaptain.web import live


@pytest.fixture
def web(h: Harness, tmp_path: Path) -> Iterator[TestClient]:
    with api_client(h, tmp_path) as client:
        yield client


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """The stream's events as (name, data)."""
    name, data = "", []
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and name:
            yield name, "\n".join(data)
            name, data = "", []


def test_a_running_steps_log_streams_to_the_page_before_the_step_ends(
    web: TestClient, h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stream that never shows the lines ends (and the test fails) in a minute, not five
    monkeypatch.setattr(live, "LIVE_FOR", 60.0)
    done = tmp_path / "may-finish"
    # the step prints (what it prints is not in its command line, which the log shows
    # first), then waits for the test's word: it cannot end before the test saw
    # its lines
    runbook = write_runbook(
        tmp_path,
        "name: tailing\nenvironment: staging\n" + ROLES + "phases:\n  - id: build\n    steps:\n"
        "      - id: compile\n        action: shell\n        with:\n          command: |\n"
        '            echo "compiling $((6 * 7))"\n            sleep 0.2\n'
        '            echo "needle <beta> & co $((40 + 2))"\n'
        f"            while [ ! -e '{done}' ]; do sleep 0.1; done\n"
        '            echo "linked $((1 + 1))"\n',
        "tailing.yaml",
    )
    release = h.start(runbook)
    sign_in(web, token_for(h.client.store, "sam"))
    seen = ""
    with web.stream("GET", f"/releases/{release.id}/live") as stream:
        for name, data in _events(stream.iter_lines()):
            assert name != "end", "the release ended before its log was seen"
            if 'id="log-compile"' in data and "needle &lt;beta&gt; &amp; co 42" in data:
                seen = data
                break
    assert seen, "the stream ended without the running step's lines"
    step = h.client.store.latest_step_runs(release.id)["compile"]
    assert step.status == "running"  # the lines came while the step ran
    assert step.ended_at is None
    lines = step.detail.splitlines()
    assert lines.index("compiling 42") < lines.index("needle <beta> & co 42")
    fragment = seen[seen.index('id="step-compile"') :]
    assert 'data-status="running"' in fragment
    assert 'class="log-search" data-log="log-compile"' in fragment  # search works on it
    assert f"Log ({len(lines)} lines)" in html.unescape(fragment)
    assert "compiling 42" in fragment
    assert "linked 2" not in seen

    done.touch()
    finished = h.wait(release.id)
    assert finished.status == "succeeded"
    step = h.client.store.latest_step_runs(release.id)["compile"]
    assert step.detail.splitlines()[-1] == "linked 2"
    assert "linked 2" in web.get(f"/releases/{release.id}").text
