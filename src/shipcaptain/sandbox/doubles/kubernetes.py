"""A loopback double of the Kubernetes API server, enough for real kubectl 1.32.

It answers discovery (``/version``, ``/api``, ``/apis``, each group version), OpenAPI v3
documents whose PATCH operations carry ``x-kubernetes-group-version-kind`` (kubectl looks
there for server-side field validation), and CRUD of the kinds a kustomize overlay holds,
stored generically: GET, LIST and WATCH (``labelSelector``, ``fieldSelector`` on
``metadata.name``, ``resourceVersion``), POST, PUT, DELETE and PATCH as server-side apply
(``application/apply-patch+yaml``, with ``dryRun=All``), strategic merge, merge and JSON
patch (what ``kubectl rollout undo`` sends).

A small controller plays the Deployment and ReplicaSet controllers and the kubelet: it
makes a ReplicaSet per pod template (``deployment.kubernetes.io/revision``, owner
references), scales it up and the old ones down, runs pods whose
``status.containerStatuses[].imageID`` carries the digest of the image in the double's
registry, and keeps the Deployment's status and conditions the way the real controller
does. It can be told to fail a rollout (see ``Behaviour``): an image the registry does
not know (ErrImagePull, then ImagePullBackOff), a crash loop, pods that keep restarting,
or pods that never get ready (``ProgressDeadlineExceeded`` once the deadline passes).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shipcaptain.integrations import k8s_manifests as manifests
from shipcaptain.sandbox.doubles.kubernetes_api import (
    BUILT_IN,
    RESOURCES,
    ApiError,
    Resource,
    apply_patch,
    clone,
    defaults,
    discovery,
    openapi_document,
    openapi_index,
    resource_for,
    served_by,
)
from shipcaptain.sandbox.doubles.kubernetes_auth import (
    Authenticator,
    Identity,
    Pki,
    Unauthorized,
    authorize,
)
from shipcaptain.sandbox.service import Service

Obj = dict[str, Any]
_CRD = RESOURCES["customresourcedefinitions"]


class Behaviour(StrEnum):
    """How the pods of an image behave in the double."""

    HEALTHY = "healthy"
    BAD_IMAGE = "bad_image"  # ErrImagePull, then ImagePullBackOff
    CRASH_LOOP = "crash_loop"  # starts, exits, CrashLoopBackOff
    RESTARTS = "restarts"  # gets ready, then restarts again and again
    STALL = "stall"  # never ready, no error: only the progress deadline tells


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest_of(image: str) -> str:
    """The digest the double's registry gives an image it was not told about."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


@dataclass
class _Watcher:
    resource: Resource
    namespace: str | None
    name: str | None
    events: list[tuple[str, Obj]] = field(default_factory=list)
    wake: threading.Condition = field(default_factory=threading.Condition)


class Cluster:
    """The stored objects, the resource version, watchers and the controller's knobs."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], Obj] = {}  # (resource key, ns, name)
        self.rv = 1
        self.watchers: list[_Watcher] = []
        #: recent changes, so a watch from a resourceVersion misses nothing since then
        self.changes: deque[tuple[int, str, str, Obj]] = deque(maxlen=5000)
        #: image -> digest; images not here get ``digest_of(image)`` unless ``strict_registry``
        self.registry: dict[str, str] = {}
        self.strict_registry = False
        self.behaviour: dict[str, Behaviour] = {}  # image -> behaviour
        self.pod_ready_seconds = 0.3
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests
        #: (user, verb, group, resource, namespace) of every authorization decision
        self.decisions: list[tuple[str, str, str, str, str | None]] = []
        self.auth = Authenticator()

    # ---- storage ----

    def resources(self) -> list[Resource]:
        """The built-in kinds and those of every installed CustomResourceDefinition."""
        with self.lock:
            crds = [o for (k, _, _), o in self.objects.items() if k == _CRD.key]
        return [*BUILT_IN, *(r for crd in crds for r in served_by(crd))]

    def _key(self, res: Resource, ns: str | None, name: str) -> tuple[str, str, str]:
        return (res.key, ns or "" if res.namespaced else "", name)

    def get(self, res: Resource, ns: str | None, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects.get(self._key(res, ns, name))
            return clone(obj) if obj is not None else None

    def get_by_kind(self, kind: str) -> list[Obj]:
        """Every stored object of ``kind``, in every namespace (for tests)."""
        with self.lock:
            return [clone(o) for o in self.objects.values() if o.get("kind") == kind]

    def stored(self, res: Resource, ns: str | None = None) -> list[Obj]:
        """The stored objects of ``res`` (in ``ns``) themselves, not copies, ordered by key:
        for the controller's passes (ten a second), which hold the lock throughout and copy
        an object before changing it. Nothing may change what this returns."""
        with self.lock:
            found = [
                (key, o)
                for key, o in self.objects.items()
                if key[0] == res.key and (ns is None or not res.namespaced or key[1] == ns)
            ]
            return [o for _, o in sorted(found, key=lambda item: item[0])]

    def list(self, res: Resource, ns: str | None = None) -> list[Obj]:
        """Copies of the stored objects of ``res`` (in ``ns``), ordered by key."""
        with self.lock:
            return [clone(o) for o in self.stored(res, ns)]

    def put(self, res: Resource, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Create or replace ``obj``; bumps generation when the spec changed."""
        with self.lock:
            meta = obj.setdefault("metadata", {})
            ns = meta.get("namespace") if res.namespaced else None
            if res.namespaced:
                meta["namespace"] = ns = ns or "default"
                if self._key(RESOURCES["namespaces"], None, ns) not in self.objects:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            key = self._key(res, ns, meta["name"])
            old = self.objects.get(key)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            _strings_only(obj)
            defaults(obj)
            if old is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta["generation"] = 1
            else:
                meta["uid"] = old["metadata"]["uid"]
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
                changed = obj.get("spec") != old.get("spec")
                meta["generation"] = old["metadata"].get("generation", 1) + (1 if changed else 0)
                if "status" not in obj and "status" in old:
                    obj["status"] = old["status"]
            if dry_run:
                return clone(obj)
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            self.objects[key] = clone(obj)
            self._notify(res, "ADDED" if old is None else "MODIFIED", obj)
            return clone(obj)

    def set_status(self, res: Resource, ns: str | None, name: str, status: Obj) -> None:
        with self.lock:
            obj = self.objects.get(self._key(res, ns, name))
            if obj is None or obj.get("status") == status:
                return
            obj["status"] = clone(status)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._notify(res, "MODIFIED", obj)

    def delete(self, res: Resource, ns: str | None, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects.pop(self._key(res, ns, name), None)
            if obj is not None:
                self.rv += 1
                obj["metadata"]["resourceVersion"] = str(self.rv)
                self._notify(res, "DELETED", obj)
            return obj

    def _notify(self, res: Resource, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.changes.append((int(meta["resourceVersion"]), res.key, kind, clone(obj)))
        for w in self.watchers:
            if w.resource.key != res.key:
                continue
            if w.namespace and res.namespaced and meta.get("namespace") != w.namespace:
                continue
            if w.name and meta["name"] != w.name:
                continue
            with w.wake:
                w.events.append((kind, clone(obj)))
                w.wake.notify_all()

    # ---- the knobs tests and the demo turn ----

    def behave(self, image: str, behaviour: Behaviour | str) -> None:
        self.behaviour[image] = Behaviour(behaviour)

    def publish(self, image: str, digest: str | None = None) -> str:
        """Put ``image`` in the registry (with a digest made up from its name by default)."""
        self.registry[image] = digest or digest_of(image)
        return self.registry[image]

    def image_digest(self, image: str) -> str | None:
        if "@sha256:" in image:
            return image.split("@", 1)[1]
        if image in self.registry:
            return self.registry[image]
        return None if self.strict_registry else digest_of(image)

    def behaviour_of(self, image: str) -> Behaviour:
        if image in self.behaviour:
            return self.behaviour[image]
        return Behaviour.BAD_IMAGE if self.image_digest(image) is None else Behaviour.HEALTHY


class _Handler(BaseHTTPRequestHandler):
    server: KubernetesServer
    who: Identity
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # ---- plumbing ----

    def _send(self, code: int, body: Obj, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: ApiError) -> None:
        self._send(err.code, err.status())

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def _authenticate(self, method: str) -> Identity | None:
        peer = None
        if isinstance(self.connection, ssl.SSLSocket):
            peer = self.connection.getpeercert() or None
        try:
            who = self.server.cluster.auth.authenticate(self.headers.get("Authorization", ""), peer)
        except Unauthorized:
            self._error(ApiError(401, "Unauthorized", "Unauthorized"))
            return None
        self.server.cluster.auth.seen.append((who.user, who.via, method, self.path))
        return who

    def _authorize(
        self, who: Identity, method: str, query: dict[str, str], target: tuple[Any, ...]
    ) -> None:
        """403 Forbidden, worded like the API server, unless RBAC allows the request."""
        res, ns, name, sub = target
        if method == "GET":
            verb = "watch" if query.get("watch") in ("1", "true") else "get" if name else "list"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, "get"
            )
        resource = f"{res.plural}/{sub}" if sub else res.plural
        cluster = self.server.cluster
        rbac = {
            plural: cluster.list(RESOURCES[plural])
            for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
        }
        self.server.cluster.decisions.append((who.user, verb, res.group, resource, ns))
        if authorize(who, verb, res.group, resource, ns, rbac):
            return
        what = f"{res.plural}.{res.group}" if res.group else res.plural
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        subject = f'"{name}" ' if name else ""
        raise ApiError(
            403,
            "Forbidden",
            f'{what} {subject}is forbidden: User "{who.user}" cannot {verb} resource '
            f'"{resource}" in API group "{res.group}"{where}',
        )

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        cluster = self.server.cluster
        who = self._authenticate(method)
        if who is None:
            return
        self.who = who
        cluster.requests.append((method, self.path))
        try:
            static = self._static(url.path) if method == "GET" else None
            if static is not None:  # discovery: every authenticated user (system:discovery)
                self._send(200, static)
                return
            res, ns, name, sub = resource_for(url.path, cluster.resources())
            self._authorize(who, method, query, (res, ns, name, sub))
            if method == "GET" and name is None:
                if query.get("watch") in ("1", "true"):
                    self._watch(res, ns, query)
                else:
                    self._send(200, self._list(res, ns, query))
            elif method in ("GET", "HEAD"):
                self._send(200, self._get(res, ns, name or ""))
            elif method == "POST" and name is None:
                obj = _json(self._body())
                obj.setdefault("metadata", {}).setdefault("namespace", ns)
                if cluster.get(res, ns, obj["metadata"].get("name", "")) is not None:
                    raise ApiError(
                        409,
                        "AlreadyExists",
                        f'{res.plural} "{obj["metadata"]["name"]}" already exists',
                    )
                self._send(201, cluster.put(res, obj, dry_run="dryRun" in query))
            elif method == "PUT" and name is not None:
                obj = _json(self._body())
                current = self._get(res, ns, name)
                if sub == "status":
                    current["status"] = obj.get("status", {})
                    obj = current
                self._send(200, cluster.put(res, obj, dry_run="dryRun" in query))
            elif method == "PATCH" and name is not None:
                self._patch(res, ns, name, query)
            elif method == "DELETE" and name is not None:
                gone = cluster.delete(res, ns, name)
                if gone is None:
                    raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
                self._send(200, gone)
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} {url.path} is not supported")
        except ApiError as err:
            self._error(err)

    def _static(self, path: str) -> Obj | None:
        if path == "/version":
            return {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-shipcaptain-double",
                "platform": "linux/amd64",
            }
        if path == "/openapi/v3":
            return openapi_index(self.server.cluster.resources())
        if path.startswith("/openapi/v3/"):
            rel = path.removeprefix("/openapi/v3/")
            return openapi_document(rel, self.server.cluster.resources())
        return discovery(path, self.server.cluster.resources())

    def _get(self, res: Resource, ns: str | None, name: str) -> Obj:
        obj = self.server.cluster.get(res, ns, name)
        if obj is None:
            what = f"{res.plural}.{res.group}" if res.group else res.plural
            raise ApiError(404, "NotFound", f'{what} "{name}" not found')
        return obj

    def _selected(self, res: Resource, ns: str | None, query: dict[str, str]) -> list[Obj]:
        items = self.server.cluster.list(res, ns)
        return [o for o in items if _matches(o, query)]

    def _list(self, res: Resource, ns: str | None, query: dict[str, str]) -> Obj:
        with self.server.cluster.lock:
            rv = str(self.server.cluster.rv)
            items = self._selected(res, ns, query)
        return {
            "apiVersion": res.api_version if res.group else "v1",
            "kind": f"{res.kind}List",
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _watch(self, res: Resource, ns: str | None, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        watcher = _Watcher(res, ns, None)
        with cluster.lock:
            since = int(query.get("resourceVersion") or 0)
            if not since:  # a watch without a version starts with the current objects
                watcher.events = [("ADDED", o) for o in self._selected(res, ns, query)]
            else:  # every change after that version, then live ones
                watcher.events = [
                    (kind, obj)
                    for rv, key, kind, obj in cluster.changes
                    if rv > since
                    and key == res.key
                    and (ns is None or obj["metadata"].get("namespace") == ns)
                ]
            cluster.watchers.append(watcher)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        until = time.monotonic() + float(query.get("timeoutSeconds") or 300)
        try:
            while time.monotonic() < until and not self.server.stopping.is_set():
                with watcher.wake:
                    if not watcher.events:
                        watcher.wake.wait(0.2)
                    events, watcher.events = watcher.events, []
                for kind, obj in events:
                    if int(obj["metadata"].get("resourceVersion", 0)) <= since and kind != "ADDED":
                        continue
                    if not _matches(obj, query):
                        continue
                    line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with cluster.lock:
                cluster.watchers.remove(watcher)

    def _patch(self, res: Resource, ns: str | None, name: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._body()
        dry_run = query.get("dryRun") == "All"
        with cluster.lock:
            current = cluster.get(res, ns, name)
            if ctype == "application/apply-patch+yaml":
                patch = manifests.load(body.decode()) or {}
                if not isinstance(patch, dict):
                    raise ApiError(400, "BadRequest", "the applied configuration is not an object")
                patch.setdefault("metadata", {})["name"] = name
                if res.namespaced:
                    patch["metadata"]["namespace"] = ns
                manager = query.get("fieldManager", "")
                if not manager:
                    raise ApiError(422, "Invalid", "fieldManager is required for apply requests")
                if current is None:  # a patch that creates is authorized for create too
                    self._authorize(self.who, "POST", query, (res, ns, name, None))
                merged = apply_patch(ctype, current, patch, manager)
                code = 201 if current is None else 200
            else:
                if current is None:
                    raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
                merged = apply_patch(ctype, current, _json(body), query.get("fieldManager", ""))
                code = 200
            self._send(code, cluster.put(res, merged, dry_run=dry_run))

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_HEAD(self) -> None:
        self._route("HEAD")


#: maps whose values the API server decodes as Go strings: a YAML ``yes`` read as true, a
#: number, a null, is refused when it decodes the object, before anything is stored
_STRING_MAPS = {
    "ConfigMap": ("data", "binaryData"),
    "Secret": ("data", "stringData"),
}
_JSON_TYPES = {bool: "bool", int: "number", float: "number", dict: "object", list: "array"}


def _strings_only(obj: Obj) -> None:
    """The API server's answer to a non-string where its Go type has a string: 400, as
    ``ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal
    bool into Go struct field ConfigMap.data of type string``."""
    kind, version = obj.get("kind", ""), obj.get("apiVersion", "")
    meta = obj.get("metadata") or {}
    places = [(f"ObjectMeta.metadata.{m}", meta.get(m)) for m in ("labels", "annotations")]
    places += [(f"{kind}.{field}", obj.get(field)) for field in _STRING_MAPS.get(kind, ())]
    for where, values in places:
        for value in (values or {}).values():
            if isinstance(value, str) or value is None:  # a null decodes as ""
                continue
            what = _JSON_TYPES.get(type(value), "value")
            raise ApiError(
                400,
                "BadRequest",
                f'{kind} in version "{version.rsplit("/", 1)[-1]}" cannot be handled as a '
                f"{kind}: json: cannot unmarshal {what} into Go struct field {where} of "
                "type string",
            )


def _json(body: bytes) -> Obj:
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"the body is not JSON: {exc}") from exc
    if not isinstance(value, dict | list):
        raise ApiError(400, "BadRequest", "the body is not a JSON object")
    return value  # type: ignore[return-value]


def _matches(obj: Obj, query: dict[str, str]) -> bool:
    meta = obj.get("metadata", {})
    for term in filter(None, query.get("fieldSelector", "").split(",")):
        key, _, value = term.partition("=")
        actual = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
        if actual.get(key.rstrip("=")) != value.lstrip("="):
            return False
    labels = meta.get("labels") or {}
    for term in filter(None, query.get("labelSelector", "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


class _RegistryHandler(BaseHTTPRequestHandler):
    """The image registry the cluster pulls from: a service of its own, on plain HTTP."""

    server: RegistryServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _serve(self, method: str) -> None:
        """The image registry the cluster pulls from (OCI distribution API, read only):
        ``HEAD|GET /v2/<name>/manifests/<tag>`` answers the digest in Docker-Content-Digest."""
        path = urlsplit(self.path).path
        repo, _, ref = path.removeprefix("/v2/").rpartition("/manifests/")
        digest = None
        for image, known in self.server.cluster.registry.items():
            name, _, tag = image.split("/", 1)[-1].rpartition(":")
            if (name, tag) == (repo, ref) or (repo == name and ref == known):
                digest = known
        if path == "/v2/" or digest is not None:
            body = json.dumps({"schemaVersion": 2} if digest else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            if digest:
                self.send_header("Docker-Content-Digest", digest)
        else:
            body = json.dumps(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            ).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cluster: Cluster, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _RegistryHandler)
        self.cluster = cluster


class KubernetesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cluster: Cluster, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.cluster = cluster
        self.tls = tls
        self.stopping = threading.Event()

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake happens in the request's own thread
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (kubectl ^C, a killed engine) or failed the TLS
        handshake is not an error of the double."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


class KubernetesDouble(Service):
    """The API server and its controller on 127.0.0.1 (port 0), as a context manager.

    ``kubeconfig(path)`` writes a kubeconfig (context ``sandbox``, the bearer token
    ``TOKEN``, the only one the double accepts until told others) that kubectl and
    shipcaptain use like any other. It serves HTTPS only, as every API server does (kubectl
    sends no credential over plain HTTP), with a CA of its own (``pki.ca_crt``), and
    accepts client certificates from ``pki.issue(user, groups)``. The image registry is a
    service of its own on plain HTTP (``registry_url``)."""

    TOKEN = "sandbox-token"

    def __init__(
        self,
        *,
        pod_ready_seconds: float = 0.3,
        tick: float = 0.1,
        port: int = 0,
        registry_port: int = 0,
        nodes: int = 3,
    ) -> None:
        from shipcaptain.sandbox.doubles.kubernetes_controller import Controller

        self.cluster = Cluster()
        self.cluster.pod_ready_seconds = pod_ready_seconds
        self.cluster.auth.allow_token(self.TOKEN, "sandbox-admin", groups=("system:masters",))
        self.pki = Pki()
        self.server = KubernetesServer(self.cluster, port, self.pki.server_context())
        self.registry = RegistryServer(self.cluster, registry_port)
        self._registry_thread = threading.Thread(
            target=self.registry.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.controller = Controller(self.cluster, tick=tick)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        for name in ("default", "kube-system"):
            self.cluster.put(RESOURCES["namespaces"], {"metadata": {"name": name}})
        for n in range(nodes):  # where DaemonSets run a pod each
            labels = {"kubernetes.io/os": "linux", "kubernetes.io/hostname": f"node-{n}"}
            self.cluster.put(
                RESOURCES["nodes"], {"metadata": {"name": f"node-{n}", "labels": labels}}
            )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"https://{host!s}:{port}"

    @property
    def registry_url(self) -> str:
        host, port = self.registry.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> KubernetesDouble:
        self._thread.start()
        self._registry_thread.start()
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.registry.shutdown()
        self.registry.server_close()
        self.pki.remove()

    def cluster_entry(self) -> Obj:
        """A kubeconfig's ``cluster:`` for the double (with its CA over HTTPS)."""
        ca = base64.b64encode(self.pki.ca_crt.read_bytes()).decode()
        return {"server": self.url, "certificate-authority-data": ca}

    def kubeconfig(
        self,
        path: Path,
        *,
        context: str = "sandbox",
        namespace: str = "default",
        user: Obj | None = None,
    ) -> Path:
        """A kubeconfig for the double; ``user`` replaces the bearer token (an ``exec:``
        plugin, a client certificate, another token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": self.cluster_entry()}],
            "users": [{"name": f"{context}-admin", "user": user or {"token": self.TOKEN}}],
            "contexts": [
                {
                    "name": context,
                    "context": {
                        "cluster": context,
                        "user": f"{context}-admin",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    # ---- convenience for tests and the demo ----

    def deployment(self, name: str, namespace: str = "default") -> Obj | None:
        return self.cluster.get(RESOURCES["deployments"], namespace, name)

    def pods(self, namespace: str = "default") -> list[Obj]:
        return self.cluster.list(RESOURCES["pods"], namespace)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the controller (nothing progresses) inside the block."""
        with self.controller.paused():
            yield
