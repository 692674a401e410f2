"""The Kubernetes double's object store: what it hands out and takes in are copies (a
caller changing one changes nothing stored, as an API server's response is its own), and
lists come sorted by namespace and name whatever the order things were stored in."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from shipcaptain.sandbox.doubles.kubernetes import Cluster, clone
from shipcaptain.sandbox.doubles.kubernetes_api import RESOURCES

NS, CM = RESOURCES["namespaces"], RESOURCES["configmaps"]


def cluster_with(*names: str) -> Cluster:
    cluster = Cluster()
    for ns in ("b", "a"):
        cluster.put(NS, {"metadata": {"name": ns}})
    for name in names:
        ns, _, short = name.partition("/")
        cluster.put(CM, {"metadata": {"name": short, "namespace": ns}, "data": {"k": "v"}})
    return cluster


def test_what_the_store_hands_out_and_takes_in_are_copies() -> None:
    cluster = cluster_with("a/one")
    got = cluster.get(CM, "a", "one")
    assert got is not None
    got["data"]["k"] = "changed"
    got["metadata"]["labels"] = {"x": "y"}
    listed = cluster.list(CM, "a")
    listed[0]["data"]["k"] = "changed too"
    again = cluster.get(CM, "a", "one")
    assert again is not None
    assert again["data"] == {"k": "v"}
    assert "labels" not in again["metadata"]
    given: dict[str, Any] = {"metadata": {"name": "two", "namespace": "a"}, "data": {"k": "1"}}
    cluster.put(CM, given)
    given["data"]["k"] = "2"  # the caller's own object, after the put
    stored = cluster.get(CM, "a", "two")
    assert stored is not None
    assert stored["data"] == {"k": "1"}


def test_lists_are_sorted_by_namespace_then_name_and_filtered() -> None:
    cluster = cluster_with("b/zeta", "a/beta", "b/alpha", "a/alpha")
    names = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in cluster.list(CM)]
    assert names == [("a", "alpha"), ("a", "beta"), ("b", "alpha"), ("b", "zeta")]
    assert [o["metadata"]["name"] for o in cluster.list(CM, "b")] == ["alpha", "zeta"]
    assert [o["metadata"]["name"] for o in cluster.list(NS)] == ["a", "b"]


def test_clone_copies_json_like_values_and_anything_else_the_general_way() -> None:
    plain = {"a": [1, 2.5, {"b": None, "c": True}], "d": "text"}
    copied = clone(plain)
    assert copied == plain
    assert copied is not plain
    assert copied["a"] is not plain["a"]
    assert copied["a"][2] is not plain["a"][2]
    # a dict subclass (a YAML loader's ordered map, say) is not marshal's: deepcopy keeps it
    ordered = OrderedDict(x={"y": 1})
    kept = clone(ordered)
    assert type(kept) is OrderedDict
    assert kept == ordered
    assert kept["x"] is not ordered["x"]
