"""The Kubernetes API's vocabulary for the double: resources, discovery, OpenAPI v3, the
Status error shape, defaults and the four kinds of PATCH."""

from __future__ import annotations

import base64
import copy
import json
import marshal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

Obj = dict[str, Any]

T = TypeVar("T")


def clone(obj: T) -> T:
    """A deep copy of a stored object (JSON-like: dicts, lists, strings, numbers), so a
    caller never holds the cluster's own. marshal's round trip is about four times faster
    than ``copy.deepcopy``, which the controller's passes (ten a second, every object)
    paid for most of a sandbox world's Kubernetes CPU."""
    try:
        return cast(T, marshal.loads(marshal.dumps(cast(Any, obj))))
    except ValueError:  # a value marshal does not know (not JSON-like): the general copy
        return copy.deepcopy(obj)


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.api_version}/{self.plural}"

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


_ALL = [
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    Resource("", "v1", "nodes", "Node", namespaced=False, short_names=("no",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    Resource("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "services", "Service", short_names=("svc",)),
    Resource("", "v1", "pods", "Pod", short_names=("po",)),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",)),
    Resource("apps", "v1", "deployments", "Deployment", short_names=("deploy",)),
    Resource("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",)),
    Resource("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",)),
    Resource("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",)),
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision"),
    Resource("batch", "v1", "cronjobs", "CronJob", short_names=("cj",)),
    Resource("batch", "v1", "jobs", "Job"),
    Resource(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
    ),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",)),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",)),
    Resource(
        "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)
    ),
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
    ),
]
RESOURCES: dict[str, Resource] = {r.plural: r for r in _ALL}
BUILT_IN: tuple[Resource, ...] = tuple(_ALL)


def served_by(crd: Obj) -> list[Resource]:
    """The resources an installed CustomResourceDefinition adds to the API."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    return [
        Resource(
            spec.get("group", ""),
            version.get("name", ""),
            names.get("plural", ""),
            names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
        )
        for version in spec.get("versions") or []
        if version.get("served", True)
    ]


_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


class ApiError(Exception):
    """An error the API answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _group_versions(known: Sequence[Resource]) -> dict[str, list[Resource]]:
    out: dict[str, list[Resource]] = {}
    for res in known:
        out.setdefault(res.api_version, []).append(res)
    return out


def discovery(path: str, known: Sequence[Resource] = BUILT_IN) -> Obj | None:
    """The legacy discovery documents (``/api``, ``/apis``, ``/api/v1``, ``/apis/g/v``)."""
    path = path.rstrip("/")
    groups = _group_versions(known)
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            ],
        }
    if path == "/apis":
        by_group: dict[str, list[Obj]] = {}
        for gv in groups:
            if "/" not in gv:
                continue
            group, version = gv.split("/")
            by_group.setdefault(group, []).append({"groupVersion": gv, "version": version})
        entries = [
            {"name": group, "versions": refs, "preferredVersion": refs[0]}
            for group, refs in by_group.items()
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": entries}
    gv = path.removeprefix("/api/") if path.startswith("/api/") else path.removeprefix("/apis/")
    if path.startswith(("/api/", "/apis/")) and gv in groups:
        resources: list[Obj] = []
        for res in groups[gv]:
            resources.append(
                {
                    "name": res.plural,
                    "singularName": res.kind.lower(),
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": _VERBS,
                    "shortNames": list(res.short_names),
                }
            )
            resources.append(
                {
                    "name": f"{res.plural}/status",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }
    return None


def openapi_index(known: Sequence[Resource] = BUILT_IN) -> Obj:
    paths = {}
    for gv in _group_versions(known):
        rel = f"api/{gv}" if "/" not in gv else f"apis/{gv}"
        paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash=shipcaptain-double-1"}
    return {"paths": paths}


def openapi_document(rel: str, known: Sequence[Resource] = BUILT_IN) -> Obj:
    """One group version's OpenAPI v3 document: the operations of each resource, with
    the GVK extension and the query parameters kubectl checks for (fieldValidation)."""
    rel = rel.split("?", maxsplit=1)[0].strip("/")
    gv = rel.removeprefix("api/").removeprefix("apis/")
    resources = _group_versions(known).get(gv)
    if resources is None:
        raise ApiError(404, "NotFound", f"no OpenAPI document for {rel}")
    params = [
        {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
    ]
    paths: Obj = {}
    for res in resources:
        gvk = {"group": res.group, "version": res.version, "kind": res.kind}
        base = (
            f"{res.prefix}/namespaces/{{namespace}}/{res.plural}"
            if res.namespaced
            else (f"{res.prefix}/{res.plural}")
        )
        op = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
        }
        paths[base] = {
            "post": {**op, "x-kubernetes-action": "post"},
            "get": {**op, "x-kubernetes-action": "list"},
        }
        paths[f"{base}/{{name}}"] = {
            verb: {**op, "x-kubernetes-action": action}
            for verb, action in (
                ("get", "get"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            )
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (shipcaptain double)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def resource_for(
    path: str, known: Sequence[Resource] = BUILT_IN
) -> tuple[Resource, str | None, str | None, str | None]:
    """(resource, namespace, name, subresource) of an object or collection path."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        gv, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({path})"
        )
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    for res in known:
        if res.api_version == gv and res.plural == rest[0]:
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
            return res, ns, name, sub
    if gv == "v1" and rest[0] == "namespaces" and len(rest) == 2:
        return RESOURCES["namespaces"], None, rest[1], None
    raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def defaults(obj: Obj) -> Obj:
    """The API server's defaults for the fields the controller and kubectl read."""
    if obj.get("kind") == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    if obj.get("kind") == "CustomResourceDefinition":  # established at once
        names = obj.get("spec", {}).get("names", {})
        obj["status"] = {
            "acceptedNames": names,
            "storedVersions": [
                v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")
            ],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"},
            ],
        }
    if obj.get("kind") in ("StatefulSet", "DaemonSet"):
        spec = obj.setdefault("spec", {})
        if obj["kind"] == "StatefulSet":
            spec.setdefault("replicas", 1)
            spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        strategy.setdefault("type", "RollingUpdate")
    if obj.get("kind") == "Secret":
        obj.setdefault("type", "Opaque")
        plain = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {})
        for key, value in plain.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    return obj


# ---- patches ----


def apply_patch(ctype: str, current: Obj | None, patch: Any, manager: str) -> Obj:
    if ctype == "application/apply-patch+yaml":
        return _server_side_apply(current, patch, manager)
    if current is None:
        raise ApiError(404, "NotFound", "object not found")
    if ctype == "application/json-patch+json":
        return _json_patch(current, patch)
    if ctype == "application/merge-patch+json":
        return dict(_merge(current, patch, strategic=False))
    if ctype == "application/strategic-merge-patch+json":
        return dict(_merge(current, patch, strategic=True))
    raise ApiError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
    )


def _server_side_apply(current: Obj | None, applied: Obj, manager: str) -> Obj:
    """Server-side apply for a single manager: the applied configuration owns every field
    it names; a top-level section (spec, data, ...) it names is replaced, so a field this
    manager no longer sets goes away. Labels and annotations are merged."""
    result: Obj = copy.deepcopy(current) if current is not None else {}
    meta = result.setdefault("metadata", {})
    new_meta = applied.get("metadata", {})
    for key in ("labels", "annotations"):
        if key in new_meta:
            meta[key] = {**meta.get(key, {}), **new_meta[key]}
    meta["name"] = new_meta["name"]
    if "namespace" in new_meta:
        meta["namespace"] = new_meta["namespace"]
    for key, value in applied.items():
        if key not in ("metadata", "status", "apiVersion", "kind"):
            result[key] = copy.deepcopy(value)
    result["kind"], result["apiVersion"] = applied.get("kind"), applied.get("apiVersion")
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion"),
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": _fieldset(applied),
    }
    others = [m for m in meta.get("managedFields", []) if m.get("manager") != manager]
    meta["managedFields"] = [*others, entry]
    return defaults(result)


def _fieldset(value: Any) -> Obj:
    if not isinstance(value, dict):
        return {}
    out: Obj = {}
    for key, sub in value.items():
        if key in ("apiVersion", "kind") or (key == "metadata" and not isinstance(sub, dict)):
            continue
        if isinstance(sub, list):
            out[f"f:{key}"] = {
                (
                    f'k:{{"name":{json.dumps(i["name"])}}}'
                    if isinstance(i, dict) and "name" in i
                    else f"v:{json.dumps(i)}"
                ): _fieldset(i)
                for i in sub
            }
        else:
            out[f"f:{key}"] = _fieldset(sub)
    return out


def _merge(target: Any, patch: Any, *, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif (
            strategic
            and isinstance(value, list)
            and isinstance(result.get(key), list)
            and all(isinstance(i, dict) and "name" in i for i in [*value, *result[key]])
        ):
            merged = {i["name"]: i for i in result[key]}
            for item in value:
                merged[item["name"]] = _merge(merged.get(item["name"], {}), item, strategic=True)
            result[key] = list(merged.values())
        else:
            result[key] = _merge(result.get(key), value, strategic=strategic)
    return result


def _json_patch(target: Obj, ops: Any) -> Obj:
    doc = copy.deepcopy(target)
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a JSON patch is a list of operations")
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        elif kind == "test":
            actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if actual != op.get("value"):
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {kind!r}")
    return doc
