"""Rendered manifests: parsing, image pins, Secrets kept out of sight, the diff against the
live objects, and the history of what each release applied.

Secrets: a Secret's ``data`` and ``stringData`` never leave this module in clear. The
diff shows a Secret key as ``*** (changed)`` or ``***``; the stored history keeps no
Secret at all (only its name), so a rollback re-applies everything but Secrets, which
stay as they are.

History: the manifests a release applied are kept in the cluster itself, one ConfigMap
per release and overlay (the way Helm keeps releases), labelled with the overlay, the
release and a state: ``applied`` after the apply, ``good`` once every Deployment in it
rolled out, ``rolled-back`` when a rollback replaced it. Every shipcaptain worker with the
same kubeconfig therefore sees the same history.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from shipcaptain.integrations.kubernetes import Kubectl, KubernetesError

Obj = dict[str, Any]
MANAGER = "shipcaptain"
LABEL_PREFIX = "shipcaptain.io"
_SKIP_META = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Manifests read as kubectl reads them (sigs.k8s.io/yaml, YAML 1.1): ``yes``, ``on``,
    ``0644`` and ``1e3`` are what kubectl takes them for; a date stays a string."""


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Manifests written so that kubectl reads back the values written: a string it would
    take for something else (``yes``, ``on``, ``0644``, ``1e3``, ``2026-12-06``) quoted."""


#: a float kubectl's YAML reads and YAML 1.1's pattern does not: an exponent with no dot
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    # and the booleans YAML 1.1 has and PyYAML leaves out: y, Y, n, N
    _cls.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^[yYnN]$"), list("yYnN"))
_Loader.bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def load(text: str) -> Any:
    """One YAML document, read as kubectl and the API server read it."""
    return yaml.load(text, Loader=_Loader)


def parse(text: str) -> list[Obj]:
    docs = [d for d in yaml.load_all(text, Loader=_Loader) if isinstance(d, dict)]
    out: list[Obj] = []
    for doc in docs:
        if doc.get("kind", "").endswith("List") and "items" in doc:
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def dump(objects: list[Obj]) -> str:
    """YAML kubectl reads back as ``objects``: YAML 1.1's plain scalars are its, so a string
    such as ``yes`` or ``on`` is quoted (a YAML 1.2 writer leaves it bare and kubectl sends
    true, which the API server refuses in a ConfigMap and takes elsewhere)."""
    return str(
        yaml.dump_all(
            objects, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True
        )
    )


def ref(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    kind = obj.get("kind", "?").lower()
    return f"{kind}/{meta.get('name', '?')}" + (f" -n {ns}" if ns else "")


def secret_values(objects: list[Obj]) -> list[str]:
    """Every Secret value in the manifests, in clear and base64, for redaction."""
    values: list[str] = []
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        for value in (obj.get("stringData") or {}).values():
            values += [str(value), base64.b64encode(str(value).encode()).decode()]
        for value in (obj.get("data") or {}).values():
            values.append(str(value))
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                values.append(base64.b64decode(str(value)).decode())
    return [v for v in values if len(v) >= 4]


def redactor(objects: list[Obj]) -> Any:
    values = sorted(set(secret_values(objects)), key=len, reverse=True)

    def redact(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return redact


def pin_images(objects: list[Obj], images: dict[str, str]) -> list[str]:
    """Set ``name:tag`` (or ``name@sha256:...``) on every container of these images, like
    ``kustomize edit set image``. Returns the images set."""
    pinned: list[str] = []
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            image = container.get("image", "")
            name = re.split(r"[@]", image)[0]
            if ":" in name.rsplit("/", 1)[-1]:
                name = name.rsplit(":", 1)[0]
            if name in images:
                pin = images[name]
                container["image"] = f"{name}{pin if pin.startswith('@') else ':' + pin}"
                pinned.append(container["image"])
    return sorted(set(pinned))


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _comparable(obj: Obj | None) -> Obj | None:
    if obj is None:
        return None
    clean = json.loads(json.dumps(obj))
    clean.pop("status", None)
    meta = clean.get("metadata", {})
    for key in _SKIP_META:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return dict(clean)


def _hide_secret(obj: Obj | None, other: Obj | None, *, mark_changes: bool) -> Obj | None:
    if obj is None or obj.get("kind") != "Secret":
        return obj
    mine = {**(obj.get("data") or {})}
    for k, v in (obj.get("stringData") or {}).items():
        mine[k] = base64.b64encode(str(v).encode()).decode()
    theirs = {**((other or {}).get("data") or {})}
    for k, v in ((other or {}).get("stringData") or {}).items():
        theirs[k] = base64.b64encode(str(v).encode()).decode()
    hidden = {
        k: "*** (changed)" if mark_changes and k in theirs and theirs[k] != v else "***"
        for k, v in mine.items()
    }
    out = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    if hidden:
        out["data"] = hidden
    return out


def diff(live: Obj | None, wanted: Obj) -> str:
    """A unified diff of one object, live -> after the apply, Secret values hidden."""
    before = _comparable(live)
    after = _comparable(wanted)
    before, after = (
        _hide_secret(before, after, mark_changes=False),
        _hide_secret(after, before, mark_changes=True),
    )
    left = dump([before]).splitlines() if before is not None else []
    right = dump([after]).splitlines() if after is not None else []
    if left == right:
        return ""
    name = ref(wanted)
    lines = difflib.unified_diff(
        left, right, f"live {name}", f"after apply {name}", lineterm="", n=2
    )
    return "\n".join(lines)


# ---- history ----


@dataclass(frozen=True)
class Record:
    name: str
    namespace: str
    release: str
    state: str
    applied_at: str
    digest: str
    manifests: str  # without Secrets
    secrets: list[str]
    #: deployment -> {"revision", "images"} that ran before this release's apply
    previous: dict[str, Any]


def overlay_key(overlay: str) -> str:
    return digest_of(overlay)[:12]


def record_of(item: Obj, namespace: str) -> Record:
    """A release's record from its ConfigMap (as the API lists it)."""
    meta = item["metadata"]
    notes = meta.get("annotations", {})
    packed = (item.get("binaryData") or {}).get("manifests.yaml.gz", "")
    try:
        text = gzip.decompress(base64.b64decode(packed)).decode() if packed else ""
    except (OSError, ValueError) as exc:
        raise KubernetesError(f"history record {meta['name']} is damaged: {exc}") from exc
    return Record(
        name=meta["name"],
        namespace=namespace,
        release=notes.get(f"{LABEL_PREFIX}/release-id", ""),
        state=meta.get("labels", {}).get(f"{LABEL_PREFIX}/state", ""),
        applied_at=notes.get(f"{LABEL_PREFIX}/applied-at", ""),
        digest=notes.get(f"{LABEL_PREFIX}/digest", ""),
        manifests=text,
        secrets=[s for s in notes.get(f"{LABEL_PREFIX}/secrets-not-kept", "").split(", ") if s],
        previous=json.loads(notes.get(f"{LABEL_PREFIX}/previous-deployments") or "{}"),
    )


class History:
    """The manifests each release applied, in ConfigMaps of ``namespace``."""

    def __init__(self, kubectl: Kubectl, namespace: str, overlay: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.overlay = overlay
        self.key = overlay_key(overlay)

    @staticmethod
    def _name(release: str, key: str) -> str:
        slug = re.sub(r"[^a-z0-9-]", "-", release.lower()).strip("-")[:40]
        return f"shipcaptain-{slug}-{key}"

    def save(
        self, release: str, objects: list[Obj], digest: str, previous: dict[str, Any]
    ) -> Record:
        kept = [o for o in objects if o.get("kind") != "Secret"]
        secrets = [ref(o) for o in objects if o.get("kind") == "Secret"]
        packed = base64.b64encode(gzip.compress(dump(kept).encode())).decode()
        name = self._name(release, self.key)
        applied_at = datetime.now(UTC).isoformat(timespec="microseconds")
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    f"{LABEL_PREFIX}/overlay": self.key,
                    f"{LABEL_PREFIX}/release": re.sub(r"[^A-Za-z0-9._-]", "-", release)[:63],
                    f"{LABEL_PREFIX}/state": "applied",
                },
                "annotations": {
                    f"{LABEL_PREFIX}/overlay-path": self.overlay,
                    f"{LABEL_PREFIX}/release-id": release,
                    f"{LABEL_PREFIX}/applied-at": applied_at,
                    f"{LABEL_PREFIX}/digest": digest,
                    f"{LABEL_PREFIX}/secrets-not-kept": ", ".join(secrets),
                    f"{LABEL_PREFIX}/previous-deployments": json.dumps(previous, sort_keys=True),
                },
            },
            "binaryData": {"manifests.yaml.gz": packed},
        }
        self.kubectl.run(
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={MANAGER}-history",
            "-f",
            "-",
            stdin=json.dumps(configmap),
        )
        return Record(
            name,
            self.namespace,
            release,
            "applied",
            applied_at,
            digest,
            dump(kept),
            secrets,
            previous,
        )

    def records(self) -> list[Record]:
        """Every release's record for this overlay, oldest first."""
        out = self.kubectl.run(
            "get",
            "configmaps",
            "-n",
            self.namespace,
            "-l",
            f"{LABEL_PREFIX}/overlay={self.key}",
            "-o",
            "json",
        )
        found = [record_of(item, self.namespace) for item in json.loads(out).get("items", [])]
        return sorted(found, key=lambda r: r.applied_at)

    def of_release(self, release: str) -> Record | None:
        mine = [r for r in self.records() if r.release == release]
        return mine[-1] if mine else None

    def last_good(self, before_release: str) -> Record | None:
        good = [r for r in self.records() if r.state == "good" and r.release != before_release]
        return good[-1] if good else None

    def mark(self, record: Record, state: str) -> None:
        self.kubectl.run(
            "label",
            "configmap",
            record.name,
            "-n",
            self.namespace,
            f"{LABEL_PREFIX}/state={state}",
            "--overwrite",
        )


def images(deployment: Obj) -> list[str]:
    """The images of a workload's containers ("" for one without); none for an object with
    no pod template, or an empty section (``spec:`` with nothing under it)."""
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c.get("image", "") for c in pod.get("containers") or []]


def running_before(live: list[Obj]) -> dict[str, Any]:
    """What each live Deployment runs now (before an apply): revision and images."""
    return {
        o["metadata"]["name"]: {
            "revision": (o["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision"
            ),
            "images": images(o),
        }
        for o in live
        if o.get("kind") == "Deployment"
    }
