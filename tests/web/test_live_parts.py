"""What the live pages work out per change, without a browser: the incidents stream sends
only the row that changed, and who else may decide a gate is worked out once per gate state
(not once per team member on every render)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.releases import Harness, write_runbook
from helpers.web import GATED, token_for
from shipcaptain.web.auth import Viewer
from shipcaptain.web.live import IncidentsStream
from shipcaptain.web.pages import gate_choices


def test_the_incidents_stream_sends_only_the_row_that_changed(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_for(h.client.store, "sam")
    first = h.client.open_incident(severity="P1", summary="checkout fails", user="sam")
    second = h.client.open_incident(severity="P2", summary="slow search", user="sam")
    stream = IncidentsStream(Viewer("sam", "csrf", "session"), h.client.acting_as("sam"))
    whole, done = stream.parts()
    assert list(whole) == ["incidents"]
    assert not done
    assert f'id="incident-{first.id}"' in whole["incidents"]
    assert f'id="incident-{second.id}"' in whole["incidents"]
    reads: list[Any] = []
    real = h.client.list_incidents
    monkeypatch.setattr(h.client, "list_incidents", lambda *a: reads.append(1) or real(*a))
    assert stream.parts() == ({}, False)  # nothing new: nothing read, rendered or sent
    assert reads == []
    h.client.incident_action(first.id, "acknowledge", user="sam")
    changed, _ = stream.parts()
    (name,) = changed  # one row, not the table, not the other row
    assert name.startswith(f"patch:incident-{first.id}#")
    assert changed[name].startswith(f'<tr id="incident-{first.id}">')
    assert "acknowledged by sam" in changed[name]
    assert stream.parts() == ({}, False)
    third = h.client.open_incident(severity="P2", summary="queue backs up", user="casey")
    again, _ = stream.parts()
    assert list(again) == ["incidents"]  # a new row: the table again
    assert f'id="incident-{third.id}"' in again["incidents"]


def test_who_else_may_decide_is_worked_out_once_per_gate_state(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the on-call SREs: sam, riley, and newbie once they join the team
    sres = GATED.replace("members: [sam]", "members: [sam, riley, newbie]")
    runbook = write_runbook(tmp_path, sres, "sres.yaml")
    token_for(h.client.store, "sam")
    release = h.start(runbook)
    h.wait_for_gate(release.id, "go_ahead")
    asked: list[str] = []
    real = h.client.authorize

    def counting(user: str, action: str, **kw: Any) -> str | None:
        asked.append(user)
        return real(user, action, **kw)

    monkeypatch.setattr(h.client, "authorize", counting)
    view = h.client.show(release.id)
    (choice,) = gate_choices(view, h.client.acting_as("sam"))
    team = h.client.team_members()
    assert choice.allowed
    assert sorted(asked) == sorted(["sam", *team])  # the viewer, then each member once
    assert choice.others == ["riley"]  # not the viewer, not those without the role
    asked.clear()
    for _ in range(3):  # the same gate state: only the viewer's own check
        assert (
            gate_choices(h.client.show(release.id), h.client.acting_as("sam"))[0].others
            == choice.others
        )
    assert asked == ["sam", "sam", "sam"]
    asked.clear()
    token_for(h.client.store, "newbie")  # the team changed: worked out again
    (after,) = gate_choices(h.client.show(release.id), h.client.acting_as("sam"))
    assert after.others == ["newbie", "riley"]
    assert sorted(asked) == sorted(["sam", *h.client.team_members()])
