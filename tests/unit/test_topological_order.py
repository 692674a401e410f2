"""The runbook's step order (``outline.topological_order``) against the layered passes it
replaced (quadratic in a chain): the same order, or the same cycle error, for random
dependency maps (dependencies outside the map, self-dependencies, cycles, duplicate ids)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

import pytest

from shipcaptain.runbook.outline import topological_order


def passes(steps: Iterable[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """The old algorithm: look for every ready step again after each pass."""
    order: list[str] = []
    done: set[str] = set()
    remaining = [s for s in steps if s in deps]
    while remaining:
        ready = [s for s in remaining if all(d in done or d not in deps for d in deps[s])]
        if not ready:
            raise ValueError("dependency cycle among: " + ", ".join(remaining))
        for s in ready:
            order.append(s)
            done.add(s)
        remaining = [s for s in remaining if s not in done]
    return order


def outcome(fn: object, steps: list[str], deps: dict[str, list[str]]) -> object:
    try:
        return fn(steps, deps)  # type: ignore[operator]
    except ValueError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("seed", range(300))
def test_the_same_order_as_the_layered_passes(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(0, 12)
    names = [f"s{i}" for i in range(n)]
    deps: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        pool = names if rng.random() < 0.15 else names[:i]  # some maps have cycles
        picked = rng.sample(pool, k=min(len(pool), rng.randint(0, 3)))
        if rng.random() < 0.1:
            picked.append("outside")  # not a step of the map: no obstacle
        deps[name] = picked
    steps = list(names)
    rng.shuffle(steps)  # the file's order is not the dependencies' order
    if steps and rng.random() < 0.1:
        steps.append(rng.choice(steps))  # an id twice
    if names and rng.random() < 0.1:
        steps.remove(names[0])  # a dependency in the map but not among the steps
    assert outcome(topological_order, steps, deps) == outcome(passes, steps, deps)


def test_a_long_chain_in_order_and_a_cycle_named() -> None:
    chain = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(2000)}
    assert topological_order(reversed(list(chain)), chain) == list(chain)
    with pytest.raises(ValueError, match="dependency cycle among: b, a"):
        topological_order(["c", "b", "a"], {"a": ["b"], "b": ["a"], "c": []})
