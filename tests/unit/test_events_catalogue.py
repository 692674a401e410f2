"""The audit event catalogue (shipcaptain.events): every writer of the audit log names its
kind through it, and every kind is documented (the reference page is generated from it)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from shipcaptain import events
from shipcaptain.records import FINISHED_STEP_STATUSES

SRC = Path(__file__).resolve().parents[2] / "src" / "shipcaptain"

#: The audit log's writers: method or function name -> (index of the kind among the
#: positional arguments, how many positional arguments a writer call has at least).
#: ``record(kind, user, message, data)`` of the client; ``ctx.record(name, measure)`` of
#: an action (two arguments) is not a writer. ``Runtime.event(release, step, kind, message)``;
#: ``PagerDuty.event(message)`` is not.
WRITERS: dict[str, tuple[int, int]] = {
    "append_event": (2, 5),
    "_append_event": (3, 7),
    "event": (2, 4),
    "note": (2, 4),
    "record": (0, 4),
}


def _from_catalogue(node: ast.expr, imported: set[str]) -> bool:
    """``events.X.kind``, ``events.f(...).kind``, ``events.CommsSent.of(t)`` or ``X.kind``
    for an ``X`` imported from shipcaptain.events."""
    while isinstance(node, ast.Attribute | ast.Call):
        node = node.value if isinstance(node, ast.Attribute) else node.func
    return isinstance(node, ast.Name) and (node.id == "events" or node.id in imported)


def _function_of(tree: ast.Module, target: ast.AST) -> ast.FunctionDef | None:
    found: ast.FunctionDef | None = None
    for fn in ast.walk(tree):
        if (
            isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(n is target for n in ast.walk(fn))
            and (found is None or fn.lineno > found.lineno)
        ):
            found = fn  # type: ignore[assignment]
    return found


def _kind_is_catalogued(
    tree: ast.Module, call: ast.Call, kind: ast.expr, imported: set[str]
) -> bool:
    if _from_catalogue(kind, imported):
        return True
    fn = _function_of(tree, call)
    if fn is None:
        return False
    arguments = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    params = {a.arg for a in arguments}
    if isinstance(kind, ast.Attribute) and kind.attr == "kind" and isinstance(kind.value, ast.Name):
        # ``change.kind`` of ``change, ... = event`` where ``event: StatusEvent`` (a tuple
        # whose first item mypy checks is a class of the catalogue)
        typed = {
            a.arg for a in arguments if a.annotation and "StatusEvent" in ast.unparse(a.annotation)
        }
        return any(
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Name)
            and node.value.id in typed
            and any(
                isinstance(t, ast.Tuple)
                and any(isinstance(e, ast.Name) and e.id == kind.value.id for e in t.elts)
                for t in node.targets
            )
            for node in ast.walk(fn)
        )
    if not isinstance(kind, ast.Name):
        return False  # a literal, an f-string, a concatenation, ...
    values = [
        node.value
        for node in ast.walk(fn)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == kind.id for t in node.targets)
    ]
    if values:
        return all(_from_catalogue(v, imported) for v in values)
    return kind.id in params  # passed through: its callers are checked where they call


def uncatalogued_writes(source: str, filename: str = "<source>") -> list[str]:
    """Every call to an audit writer in ``source`` whose kind does not come from the
    catalogue, as ``file:line: the kind's code``."""
    tree = ast.parse(source, filename)
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "shipcaptain.events"
        for alias in node.names
    }
    problems: list[str] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        kinds: list[ast.expr] = [k.value for k in call.keywords if k.arg == "kind"]
        if name == "record" and not isinstance(func, ast.Attribute):
            continue  # a local function, not the client's ``record``
        if name in WRITERS:
            index, least = WRITERS[name]
            if len(call.args) >= least:
                kinds.append(call.args[index])
        elif name != "add_decision":
            continue
        for kind in kinds:
            if not _kind_is_catalogued(tree, call, kind, imported):
                problems.append(f"{filename}:{kind.lineno}: {ast.unparse(kind)}")
    return problems


def test_every_writer_names_its_kind_through_the_catalogue() -> None:
    problems: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "events.py":
            continue
        problems += uncatalogued_writes(path.read_text(encoding="utf-8"), str(path))
    assert problems == [], "audit event kinds not from shipcaptain.events:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "code",
    [
        'store.append_event(None, None, "made.up", "ann", "m")',
        'rt.event(release_id, None, f"release.{status}", "m")',
        'self._append_event(conn, None, None, "token." + what, actor, message, data)',
        'client.record("worker.gone", user, "m", {})',
        "def f(event):\n    change, a, m, d = event\n"
        "    self._append_event(conn, r, s, change.kind, a, m, d)",
        'store.add_decision(decision, kind="gate.maybe", message="m")',
        'def f():\n    kind = "incident.lost"\n'
        '    rt.store.append_event(None, None, kind, "e", "m")',
    ],
)
def test_the_check_finds_a_kind_made_up_by_a_writer(code: str) -> None:
    assert len(uncatalogued_writes(code)) == 1


@pytest.mark.parametrize(
    "code",
    [
        "store.append_event(None, None, events.TokenCreated.kind, 'ann', 'm')",
        "rt.event(release_id, None, events.release_became(status).kind, 'm')",
        "from shipcaptain.events import WorkerStopped\nclient.record(WorkerStopped.kind, u, m, {})",
        "def f(kind):\n    store.append_event(None, None, kind, 'e', 'm')",
        "ctx.record('measure', lambda: 1)",
        "self.event(message)",
        "def f(event: StatusEvent):\n    change, a, m, d = event\n"
        "    self._append_event(conn, r, s, change.kind, a, m, d)",
    ],
)
def test_the_check_accepts_kinds_from_the_catalogue(code: str) -> None:
    assert uncatalogued_writes(code) == []


def test_kinds_are_unique_lower_case_and_documented() -> None:
    documented_before = [  # the hand-written table the generated page replaced
        "release.created",
        "gate.approval.opened",
        "gate.checklist.opened",
        "gate.rollback.opened",
        "gate.approved",
        "gate.rejected",
        "gate.confirmed",
        "gate.refused",
        "gate.closed",
        "token.created",
        "token.revoked",
        "team.applied",
        "worker.started",
        "worker.stopped",
        "migrations.applied",
        "migrations.dry_run",
        "migrations.failed",
        "audit.anchor_failed",
        "release.refused",
        "runbook.allowed",
        "runbook.disallowed",
        "incident.refused",
        "session.started",
        "session.ended",
        "release.running",
        "release.failing",
        "release.succeeded",
        "release.failed",
        "release.cancelled",
        "release.rolled_back",
        "release.resumed",
        "release.queued",
        "release.lock_taken",
        "release.taken_over",
        "rollback.requested",
        "rollback.started",
        "rollback.not_approved",
        "step.started",
        "step.succeeded",
        "step.failed",
        "step.timed_out",
        "step.skipped",
        "step.cancelled",
        "step.retry",
        "step.progress",
        "step.recovered",
        "rollback.restored",
    ]
    assert set(documented_before) <= set(events.CATALOGUE)
    for kind, cls in events.CATALOGUE.items():
        assert cls.kind == kind
        assert re.fullmatch(r"[a-z_]+(\.[a-z_<>]+)+", kind), kind
        assert cls.__doc__, f"{cls.__name__} says what it records"
        assert cls.data, f"{cls.__name__} says what its data holds"
        assert cls.group in events.GROUPS


def test_a_status_change_carries_before_and_after() -> None:
    change = events.StepFailed(before="running", after="failed")
    assert change.status_data() == {"before": "running", "after": "failed"}
    assert events.ReleaseCreated(None, "pending").status_data() == {
        "before": None,
        "after": "pending",
    }
    assert not issubclass(events.GateApproved, events.StatusChange)


def test_a_kind_computed_from_a_status_is_in_the_catalogue() -> None:
    for status in FINISHED_STEP_STATUSES:
        assert events.step_ended(status).kind == f"step.{status}"
    for status in ("running", "waiting", "failing", "succeeded", "failed", "cancelled"):
        assert events.release_became(status).kind == f"release.{status}"
    assert events.release_became("rolled_back").kind == "release.rolled_back"
    for gate_kind in ("approval", "checklist", "rollback"):
        assert events.gate_opened(gate_kind).kind == f"gate.{gate_kind}.opened"
    for verb in ("approved", "rejected", "confirmed"):
        assert events.decided(verb).kind == f"gate.{verb}"
    for done in ("acknowledged", "mitigated", "resolved"):
        assert events.incident_acted(done).kind == f"incident.{done}"
    for outcome in ("applied", "dry_run", "failed"):
        assert events.migrations_ran(outcome).kind == f"migrations.{outcome}"
    assert events.CommsSent.of("start") == "comms.start"


@pytest.mark.parametrize(
    "lookup",
    [
        lambda: events.step_ended("running"),
        lambda: events.release_became("pending"),
        lambda: events.gate_opened("vote"),
        lambda: events.decided("maybe"),
        lambda: events.incident_acted("ignored"),
        lambda: events.migrations_ran("skipped"),
    ],
)
def test_a_status_without_an_event_is_refused(lookup: object) -> None:
    with pytest.raises(ValueError, match="no event for"):
        lookup()  # type: ignore[operator]


def test_the_reference_page_lists_every_kind() -> None:
    from tools import docgen

    page = docgen.audit_events_reference()
    for kind in events.CATALOGUE:
        assert f"| `{kind}` |" in page, kind


def _event_classes() -> list[type[events.Event]]:
    found: list[type[events.Event]] = []
    todo: list[type[events.Event]] = [events.Event]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_a_kind_without_a_decorator_of_its_own_is_a_frozen_dataclass_all_the_same() -> None:
    """Only a class that adds fields is a @dataclass of its own (67 decorations cost ~20 ms
    at import, issue 27): every other one has its family's fields, equality and repr, and
    refuses any assignment as a frozen dataclass does."""
    classes = _event_classes()
    assert len(classes) > len(events.CATALOGUE) > 50
    for cls in classes:
        own = {
            name
            for name, hint in inspect.get_annotations(cls).items()
            if not str(hint).startswith("ClassVar")
        }
        fields = {f.name for f in dataclasses.fields(cls)}
        assert own <= fields, f"{cls.__name__} adds fields {own - fields}: make it a @dataclass"
        made = cls(**dict.fromkeys(fields, "x"))
        for name in [*fields, "other"]:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(made, name, "y")
    created = events.ReleaseCreated(None, "pending")
    assert repr(created) == "ReleaseCreated(before=None, after='pending')"
    assert created == events.ReleaseCreated(None, "pending")
    assert created != events.ReleaseRunning(None, "pending")
    assert hash(created) == hash(events.ReleaseCreated(None, "pending"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        del created.after
