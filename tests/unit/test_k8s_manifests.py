"""Rendered manifests: image pins, Secret values kept out of diffs, image references and
label selectors."""

from __future__ import annotations

import pytest

from shipcaptain.actions.k8s import image_name
from shipcaptain.integrations import k8s_manifests as manifests
from shipcaptain.integrations.kubernetes import label_selector

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "s", "namespace": "vc"},
    "data": {"A": "b2xkLXZhbHVl", "B": "c2FtZQ=="},  # old-value, same
}


def test_pin_images_sets_tags_and_digests_on_matching_containers_only() -> None:
    deploy = {
        "kind": "Deployment",
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "a", "image": "ghcr.io/vc/api:1.0.0"},
                        {"name": "b", "image": "ghcr.io/vc/sidecar:2"},
                        {"name": "c", "image": "localhost:5000/vc/web@sha256:" + "1" * 64},
                    ]
                }
            }
        },
    }
    pinned = manifests.pin_images(
        [deploy], {"ghcr.io/vc/api": "1.4.0", "localhost:5000/vc/web": "@sha256:" + "2" * 64}
    )
    images = [c["image"] for c in deploy["spec"]["template"]["spec"]["containers"]]
    assert images == [
        "ghcr.io/vc/api:1.4.0",
        "ghcr.io/vc/sidecar:2",
        "localhost:5000/vc/web@sha256:" + "2" * 64,
    ]
    assert pinned == sorted([images[0], images[2]])


def test_the_diff_of_a_secret_shows_keys_and_which_changed_never_values() -> None:
    wanted = {**SECRET, "data": {"A": "bmV3LXZhbHVl", "B": "c2FtZQ==", "C": "YWRkZWQ="}}
    text = manifests.diff(SECRET, wanted)
    assert "-  A: '***'\n+  A: '*** (changed)'" in text
    assert "   B: '***'" in text
    assert "+  C: '***'" in text
    for value in ("b2xkLXZhbHVl", "bmV3LXZhbHVl", "old-value", "new-value", "c2FtZQ==", "YWRkZWQ="):
        assert value not in text


def test_an_unchanged_object_has_no_diff_whatever_the_server_adds() -> None:
    live = {
        **SECRET,
        "metadata": {
            **SECRET["metadata"],
            "resourceVersion": "7",
            "uid": "u",
            "managedFields": [{"manager": "x"}],
        },
        "status": {},
    }
    assert manifests.diff(live, SECRET) == ""


def test_the_redactor_hides_secret_values_in_clear_and_base64() -> None:
    redact = manifests.redactor([{**SECRET, "stringData": {"P": "hunter2-password"}}])
    said = redact("old-value b2xkLXZhbHVl hunter2-password aHVudGVyMi1wYXNzd29yZA==")
    assert said == "*** *** *** ***"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/valuecanvas/api:1.4.0", ("ghcr.io", "valuecanvas/api", "1.4.0")),
        ("localhost:5000/api", ("localhost:5000", "api", "latest")),
        ("nginx", ("registry-1.docker.io", "library/nginx", "latest")),
        ("bitnami/redis:7", ("registry-1.docker.io", "bitnami/redis", "7")),
    ],
)
def test_image_references(image: str, expected: tuple[str, str, str]) -> None:
    assert image_name(image) == expected


def test_label_selector_from_a_deployment_selector() -> None:
    expression = {"key": "tier", "operator": "In", "values": ["x", "y"]}
    selector = {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [expression]}
    assert label_selector(selector) == "a=1,b=2,tier in (x,y)"


#: strings that kubectl's YAML (sigs.k8s.io/yaml: YAML 1.1, as go-yaml v2 resolves it) takes
#: for a bool, a number or a null when they are written bare
MISREAD_BARE = ["yes", "No", "on", "OFF", "y", "N", "0644", "0x1F", "1e3", "1_000", "~", "null"]


def test_dump_quotes_what_kubectl_would_read_as_another_type() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags", "annotations": {"since": "2026-12-06"}},
        "data": {f"K{i}": value for i, value in enumerate(MISREAD_BARE)} | {"y": "plain"},
    }
    text = manifests.dump([config])
    for value in MISREAD_BARE:
        assert f": '{value}'" in text or f': "{value}"' in text, (value, text)
    assert "'y': plain" in text  # a key too
    assert manifests.parse(text) == [config]


def test_parse_reads_bare_values_as_kubectl_does() -> None:
    [doc] = manifests.parse(
        "a: yes\nb: off\nc: y\nd: 0644\ne: 1e3\nf: 2026-12-06\ng: 'on'\nh: 1.5\n"
    )
    assert doc == {
        "a": True,
        "b": False,
        "c": True,
        "d": 420,
        "e": 1000.0,
        "f": "2026-12-06",  # kubectl keeps a date a string
        "g": "on",
        "h": 1.5,
    }
