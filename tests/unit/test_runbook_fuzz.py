"""Fuzzed runbooks: random YAML shapes, random text and random mutations of the example
runbook. Whatever comes in, ``validate`` answers with an InvalidRunbook (file, line, field)
or a runbook; never a traceback. A runbook it accepts has no step that needs itself, no
guard waiting for its own step, and ``plan`` describes it without an error of the tool."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipcaptain.actions.registry import registry
from shipcaptain.errors import InvalidRunbook, ShipError
from shipcaptain.plan import make_plan
from shipcaptain.runbook.loader import _read_yaml, parse_runbook
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import resolve_parameters

EXAMPLE = Path(__file__).parents[2] / "examples" / "valuecanvas" / "runbook.yaml"
EXAMPLE_DATA, _ = _read_yaml(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


#: words of the runbook format, so random shapes reach past the first "unknown field"
WORDS = [
    "name",
    "phases",
    "id",
    "steps",
    "action",
    "with",
    "needs",
    "guards",
    "after_steps",
    "timeout",
    "retry",
    "attempts",
    "roles",
    "members",
    "title",
    "parameters",
    "default",
    "required",
    "rollback",
    "undo",
    "owner",
    "on_failure",
    "comms",
    "templates",
    "slas",
    "command",
    "prompt",
    "quorum",
    "check",
    "after",
    "within",
    "every",
    "incidents",
]
TEMPLATES = [
    "{{ version }}",
    "{{ ('x' * 10**10)|length }}",
    "{{ ''.__class__ }}",
    "{{ range(10**9)|length }}",
    "{% include 'x' %}",
    "{{ lipsum.__globals__ }}",
    "{{ steps.nope.out }}",
    "{{ self }}",
    "{{ version",
    "{{ 2 ** (10**9) }}",
    "echo ${{ version }}",
    "{{ version | raw }}",
    "{% for i in range(10) %}{{ i }}{% endfor %}",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, 1e300, -1.0, 0, 10**20, "1e400", "99999999999d", "5m", "soon"]),
    st.sampled_from(WORDS),
    st.sampled_from(TEMPLATES),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(WORDS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=30,
)


def answer(text: str) -> Runbook | None:
    """The runbook if ``validate`` accepts ``text``; None if it refuses it properly."""
    try:
        return parse_runbook(text, "fuzzed.yaml")
    except InvalidRunbook as exc:
        refused = exc
    assert refused.problems, refused
    for problem in refused.problems:
        assert problem.location is not None
        assert problem.location.file == "fuzzed.yaml"
    return None


def assert_sound(rb: Runbook) -> None:
    """What an accepted runbook never holds; and plan describes it."""
    for step in [*rb.steps.values(), *rb.rollback]:
        assert step.id not in step.needs, step.id
        for name in step.guards:
            assert step.id not in rb.guards[name].after_steps, (step.id, name)
    rb.topological_order()  # no cycle
    given = {n: "1.4.0" for n, p in rb.parameters.items() if p.required}
    try:
        values = resolve_parameters(rb, given)
    except ShipError:
        return  # a required parameter with a pattern or choices "1.4.0" does not meet
    make_plan(rb, values, registry)


@given(data=VALUES)
@fuzz(100)
def test_random_shapes_are_refused_cleanly(data: Any) -> None:
    rb = answer(json.dumps({"name": "fuzz", "phases": data}))
    if rb is not None:
        assert_sound(rb)


@given(text=st.text(max_size=200))
@fuzz(150)
def test_random_text_is_refused_cleanly(text: str) -> None:
    rb = answer(text)
    if rb is not None:
        assert_sound(rb)


# ---- mutations of the example runbook -------------------------------------------------------


def _places(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``data``."""
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _places(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _places(value, (*path, index))
    return found


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = [p for p in _places(data) if p]
        path = draw(st.sampled_from(places))
        parent, key = _at(data, path[:-1]), path[-1]
        how = draw(st.sampled_from(["delete", "replace", "template", "self", "duplicate"]))
        if how == "delete":
            del parent[key]
        elif how == "replace":
            parent[key] = draw(VALUES)
        elif how == "template":
            parent[key] = draw(st.sampled_from(TEMPLATES))
        elif how == "self" and isinstance(parent, dict) and "id" in parent:
            parent["needs"] = [*parent.get("needs", []), parent["id"]]
        elif how == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return data


@given(data=mutated())
@fuzz(25)
def test_mutations_of_the_example_runbook_are_refused_cleanly(data: dict[str, Any]) -> None:
    rb = answer(json.dumps(data))
    if rb is not None:
        assert_sound(rb)


def test_the_example_runbook_itself_is_sound() -> None:
    rb = answer(json.dumps(EXAMPLE_DATA))
    assert rb is not None
    assert_sound(rb)
