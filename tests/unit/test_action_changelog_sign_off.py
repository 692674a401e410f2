"""changelog_sign_off against a real git repository, with a recording durable context:
what maps to which surface, and the same split on replay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.gitrepo import commit, git, make_repo
from shipcaptain.actions.base import (
    Decision,
    DurableContext,
    GateRequest,
    GateResult,
    TeamMember,
)
from shipcaptain.actions.changelog_sign_off import ChangelogSignOffAction

OWNERS = [
    TeamMember("fola", ["canvas"]),
    TeamMember("dev", ["billing", "integrations"]),
    TeamMember("erin", ["search"]),
]


class Recording(DurableContext):
    """Keeps what ``record`` measured, as the engine does; approves or rejects as told."""

    def __init__(self, workdir: Path, members: list[TeamMember], answer: str = "approve") -> None:
        self.release_id, self.step_id, self.release_values = "r1", "sign_off", {}
        self.workdir = workdir
        self.team = members
        self.kept: dict[str, Any] = {}
        self.requests: list[GateRequest] = []
        self.answer = answer

    def sleep(self, seconds: float) -> None:
        raise AssertionError("not expected")

    def progress(self, message: str) -> None:
        pass

    def members(self, role: str) -> list[TeamMember]:
        return list(self.team) if role == "feature_owner" else []

    def record(self, name: str, measure: Callable[[], Any]) -> Any:
        if name not in self.kept:
            self.kept[name] = measure()
        return self.kept[name]

    def await_gate(self, request: GateRequest) -> GateResult:
        self.requests.append(request)
        decisions = [
            Decision(self.answer, name, None, "looked", "2026-11-27T00:00:00Z")
            for name in request.people
        ]
        return GateResult(approved=self.answer == "approve", timed_out=False, decisions=decisions)


def repo_with_history(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v1.3.0", "-m", "x")
    commit(repo, "feat(canvas): shared cursors (#41)", "web/cursors.ts")
    commit(repo, "fix(billing,integrations): retry webhooks", "web/hooks.ts")
    commit(repo, "perf: faster search index", "services/search/index.py")
    sql = repo / "db" / "20261101_expand_orders.sql"
    sql.parent.mkdir()
    sql.write_text("create index concurrently orders_by_day on public.orders (day);\n")
    git(repo, "add", "db")
    git(repo, "commit", "-q", "-m", "feat: orders by day")
    commit(repo, "docs: readme", "README.md")
    return repo


def params(**extra: Any) -> Any:
    return ChangelogSignOffAction().parse_params(
        {
            "tag": "HEAD",
            "repo": "checkout",
            "migrations_dir": "db",
            "surfaces": {"search": ["services/search/**"]},
            "tables": {"billing": ["public.orders"]},
            **extra,
        }
    )


def test_scopes_paths_and_tables_pick_the_owners(tmp_path: Path) -> None:
    repo_with_history(tmp_path)
    ctx = Recording(tmp_path, OWNERS)
    outcome = ChangelogSignOffAction().run_durable(params(), ctx)
    assert outcome.ok, outcome.summary
    [request] = ctx.requests
    parts = {p["title"]: p for p in request.evidence["parts"]}
    assert list(parts) == [
        "dev: billing, integrations",
        "erin: search",
        "fola: canvas",
        "role release_captain: unassigned (no owned surface)",
    ]
    assert request.people == ["dev", "erin", "fola"]
    assert request.roles == ["release_captain"]
    assert request.quorum == 4
    dev = parts["dev: billing, integrations"]["text"]
    assert "**billing,integrations**: retry webhooks" in dev  # both scopes are dev's
    assert "- db/20261101_expand_orders.sql (expand)" in dev  # names public.orders
    assert "orders by day" in dev
    assert "cursors" not in dev
    assert "faster search index" in parts["erin: search"]["text"]  # by path
    assert "readme" in parts["role release_captain: unassigned (no owned surface)"]["text"]
    assert outcome.outputs["confirmed_by"] == ["dev", "erin", "fola"]


def test_replay_gives_the_same_split(tmp_path: Path) -> None:
    repo = repo_with_history(tmp_path)
    ctx = Recording(tmp_path, OWNERS)
    action = ChangelogSignOffAction()
    first = action.run_durable(params(), ctx)
    # the world changes before the engine replays the step: a new commit, a new owner
    commit(repo, "feat(payments): new checkout", "web/pay.ts")
    ctx.team = [*OWNERS, TeamMember("pat", ["payments"])]
    again = action.run_durable(params(), ctx)
    assert ctx.requests[0] == ctx.requests[1]
    assert first.outputs == again.outputs
    fresh = Recording(tmp_path, ctx.team)
    action.run_durable(params(), fresh)
    assert "pat: payments" in [p["title"] for p in fresh.requests[0].evidence["parts"]]


def test_a_rejection_names_who_and_which_part(tmp_path: Path) -> None:
    repo_with_history(tmp_path)
    ctx = Recording(tmp_path, OWNERS, answer="reject")
    outcome = ChangelogSignOffAction().run_durable(params(), ctx)
    assert not outcome.ok
    assert not outcome.retryable
    assert "rejected by dev (dev: billing, integrations): 'looked'" in outcome.summary


def test_nothing_changed_needs_no_sign_off(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v1.3.0", "-m", "x")
    ctx = Recording(tmp_path, OWNERS)
    outcome = ChangelogSignOffAction().run_durable(params(previous_tag="v1.3.0"), ctx)
    assert outcome.ok
    assert ctx.requests == []
    assert "nothing to sign off" in outcome.summary


def test_a_missing_previous_tag_fails_without_a_gate(tmp_path: Path) -> None:
    make_repo(tmp_path)
    ctx = Recording(tmp_path, OWNERS)
    outcome = ChangelogSignOffAction().run_durable(params(), ctx)
    assert not outcome.ok
    assert "give previous_tag" in outcome.summary
    assert ctx.requests == []
