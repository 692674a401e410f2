"""Kubernetes actions: ``k8s_apply`` (render a kustomize overlay, server-side apply, keep
the release's manifests) and ``k8s_verify_digest`` (the pods run the digest the build
made). The rollout watch and the rollback are in ``k8s_rollout``.

Every action reaches the cluster through kubectl with the user's kubeconfig and context
(kubectl's rules: ``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``, else the
pod's service account), never anything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field

from shipcaptain import tls
from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.integrations import k8s_manifests as manifests
from shipcaptain.integrations.kubernetes import (
    CredentialsError,
    KubeApi,
    Kubectl,
    KubernetesError,
    label_selector,
)

DIFF_SHOWN = 16 * 1024


class KubeParams(ActionParams):
    """Where the cluster is: the same kubeconfig and context kubectl would use."""

    kubeconfig: str | None = Field(
        default=None,
        description="Path of the kubeconfig. Default: kubectl's ($KUBECONFIG, a list merged, "
        "else ~/.kube/config, else the pod's service account).",
    )
    context: str | None = Field(
        default=None, description="Context of the kubeconfig. Default: its current context."
    )
    namespace: str | None = Field(
        default=None, description="Namespace of the deployments. Default: the context's namespace."
    )


class HistoryParams(KubeParams):
    history_namespace: str = Field(
        default="default",
        description="Namespace of the ConfigMaps that keep each release's applied manifests.",
    )


def kubectl_for(params: KubeParams, redact: Any = None) -> Kubectl:
    return Kubectl(params.kubeconfig, params.context, redact or (lambda text: text))


def api_for(params: KubeParams) -> tuple[KubeApi, str]:
    """A read-only API client through ``kubectl proxy``, and the namespace to read."""
    kubectl = kubectl_for(params)
    namespace = params.namespace or kubectl.namespace()
    api = kubectl.proxy()
    try:  # credentials that do not work fail the step now, not as a watch's "blip"
        api.get("/version")
    except KubernetesError:
        api.close()
        raise
    return api, namespace


class K8sApplyParams(HistoryParams):
    """Parameters of the ``k8s_apply`` action."""

    overlay: str = Field(
        min_length=1,
        description="Kustomize overlay directory, relative to the release's work directory.",
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        description="Image name -> tag (or @sha256:digest) set on every container of that "
        "image after rendering, like `kustomize edit set image`.",
    )
    dry_run: bool = Field(
        default=False,
        description="Show the diff against the live objects (server-side dry run); apply nothing.",
    )
    force_conflicts: bool = Field(
        default=False,
        description="Take over fields another field manager owns (kubectl --force-conflicts).",
    )


def render(params: K8sApplyParams, workdir: Path) -> tuple[str, list[dict[str, Any]], Any]:
    """The overlay rendered with kustomize, images pinned; and a redactor for its Secrets."""
    overlay = Path(workdir) / params.overlay
    if not overlay.is_dir():
        raise KubernetesError(f"kustomize overlay {overlay} is not a directory")
    objects = manifests.parse(kubectl_for(params).kustomize(overlay))
    manifests.pin_images(objects, params.images)
    return manifests.dump(objects), objects, manifests.redactor(objects)


class K8sApplyOutputs(ActionOutputs):
    """Outputs of the ``k8s_apply`` action."""

    objects: list[str] = Field(description="Every object applied, as kind/namespace/name.")
    changed: list[str] = Field(description="The objects the apply changed.")
    deployments: list[str] = Field(description="Names of the deployments applied.")
    namespace: str | None = Field(description="Their namespace.")
    digest: str = Field(description="sha256 of the rendered manifests.")
    history: str | None = Field(description="Where the applied manifests are kept.")


class K8sApplyAction(Action[K8sApplyParams]):
    """Render a kustomize overlay and apply it with server-side apply.

    Before anything is applied, kustomize must render the overlay and a server-side dry
    run must accept every object: a broken overlay stops the release with kustomize's own
    message, nothing half-applied. Every value reaches the cluster as kustomize rendered
    it: the manifests go to kubectl in the YAML kubectl reads (1.1), so a string such as
    ``on``, ``no`` or ``0644`` stays a string. The manifests are kept in the cluster (no Secret in
    them) so ``k8s_rollback`` can re-apply the last good release. Secret values never
    appear in the diff, the log or the outputs. Already done when this release's
    manifests were applied and recorded. Outputs: ``objects``, ``changed``,
    ``deployments`` (names), ``workloads`` (kind/name of every Deployment, StatefulSet and
    DaemonSet, for ``k8s_rollout``), ``namespace``, ``digest``, ``history``.
    """

    name = "k8s_apply"
    summary = (
        "Render a kustomize overlay and server-side apply it; keep the manifests for rollback."
    )
    Params = K8sApplyParams
    Outputs = K8sApplyOutputs
    idempotent = True

    def describe(self, params: K8sApplyParams, ctx: PlanContext) -> str:
        where = f"context {params.context}" if params.context else "the current kube context"
        pins = (
            f" with images {', '.join(f'{k}:{v}' for k, v in params.images.items())}"
            if params.images
            else ""
        )
        verb = "show the diff of" if params.dry_run else "server-side apply"
        return f"render {params.overlay} with kustomize{pins} and {verb} it in {where}"

    def already_done(self, params: K8sApplyParams, ctx: StepContext) -> Outcome | None:
        if params.dry_run:
            return None
        try:
            text, objects, _ = ctx.memo["k8s_apply.render"] = render(params, ctx.workdir)
            history = manifests.History(
                kubectl_for(params), params.history_namespace, params.overlay
            )
            record = history.of_release(ctx.release_id)
        except KubernetesError:  # cannot tell: the run says why
            return None
        if record is None or record.digest != manifests.digest_of(text):
            return None
        return Outcome.success(
            f"already applied by this release ({len(objects)} objects, record {record.name})",
            already_done=True,
            outputs=_outputs(objects, [], text, record.name, params),
        )

    def run(self, params: K8sApplyParams, ctx: StepContext) -> Outcome:
        try:  # the overlay as already_done rendered it a moment ago (kustomize runs once)
            text, objects, redact = ctx.memo.pop("k8s_apply.render", None) or render(
                params, ctx.workdir
            )
        except KubernetesError as exc:
            return Outcome.failure(str(exc), retryable=False)
        kubectl = kubectl_for(params, redact)
        ctx.progress(f"rendered {params.overlay}: {len(objects)} objects")
        try:
            changes, live = self._diff(kubectl, objects, params, ctx)
        except CredentialsError as exc:  # often passing (an SSO session): the retry policy
            return Outcome.failure(f"{exc} (nothing applied)")
        except KubernetesError as exc:
            hint = "; install its CustomResourceDefinition first" if "no matches for kind" in str(
                exc
            ) else ""  # fmt: skip
            return Outcome.failure(
                f"the server rejected the manifests (nothing applied): {exc}{hint}",
                retryable=False,
            )
        changed = [name for name, _ in changes]
        detail = "\n".join(d for _, d in changes)
        if len(detail) > DIFF_SHOWN:
            detail = detail[:DIFF_SHOWN] + "\n... (diff cut)"
        if params.dry_run:
            return Outcome.success(
                f"dry run: {len(changed)} of {len(objects)} objects would change",
                detail=redact(detail) or "no changes",
                outputs=_outputs(objects, changed, text, None, params),
            )
        args = ["apply", "--server-side", f"--field-manager={manifests.MANAGER}", "-f", "-"]
        if params.force_conflicts:
            args.insert(2, "--force-conflicts")
        try:
            applied = kubectl.run(*args, stdin=text, timeout=max(ctx.timeout, 10.0))
        except KubernetesError as exc:
            return Outcome.failure(redact(str(exc)))
        for line in applied.splitlines():
            ctx.progress(redact(line))
        history = manifests.History(kubectl, params.history_namespace, params.overlay)
        previous = manifests.running_before(live)
        record = history.save(ctx.release_id, objects, manifests.digest_of(text), previous)
        return Outcome.success(
            f"applied {len(objects)} objects ({len(changed)} changed) from {params.overlay}",
            detail=redact(detail + "\n" + applied),
            outputs=_outputs(objects, changed, text, record.name, params),
        )

    def _diff(
        self, kubectl: Kubectl, objects: list[dict[str, Any]], params: K8sApplyParams, ctx: Any
    ) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        """Each object that would change, with its diff; and the live objects.

        The server cannot dry-run an object in a namespace that does not exist yet, so a
        Namespace the overlay adds is created first (an apply), or, in a dry run, the
        objects inside it are shown as new without the server's dry run."""
        text = manifests.dump(objects)
        live_text = kubectl.run("get", "--ignore-not-found", "-o", "json", "-f", "-", stdin=text)
        live = {_key(o): o for o in (manifests.parse(live_text) if live_text.strip() else [])}
        new_namespaces = [
            o for o in objects if o.get("kind") == "Namespace" and _key(o) not in live
        ]
        fresh = {o["metadata"]["name"] for o in new_namespaces}
        checked = objects
        if fresh and params.dry_run:
            checked = [o for o in objects if o["metadata"].get("namespace") not in fresh]
        elif fresh:
            kubectl.run(
                "apply", "--server-side", f"--field-manager={manifests.MANAGER}", "-f", "-",
                stdin=manifests.dump(new_namespaces),
            )  # fmt: skip
            ctx.progress(f"created namespace {', '.join(sorted(fresh))} first (new)")
        wanted = manifests.parse(
            kubectl.run(
                "apply",
                "--server-side",
                "--dry-run=server",
                f"--field-manager={manifests.MANAGER}",
                "-o",
                "json",
                "-f",
                "-",
                stdin=manifests.dump(checked),
            )
        )
        wanted += [o for o in objects if o not in checked]
        out = []
        for obj in wanted:
            change = manifests.diff(live.get(_key(obj)), obj)
            if change:
                out.append((manifests.ref(obj), change))
        return out, list(live.values())


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return (obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def _outputs(
    objects: list[dict[str, Any]],
    changed: list[str],
    text: str,
    record: str | None,
    params: K8sApplyParams,
) -> dict[str, Any]:
    deployments = [o["metadata"]["name"] for o in objects if o.get("kind") == "Deployment"]
    workloads = [
        f"{o['kind'].lower()}/{o['metadata']['name']}"
        for o in objects
        if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")
    ]
    namespaces = {o["metadata"].get("namespace") for o in objects if o.get("kind") == "Deployment"}
    return {
        "objects": [manifests.ref(o) for o in objects],
        "changed": changed,
        "deployments": deployments,
        "workloads": workloads,
        "namespace": next(iter(namespaces)) if len(namespaces) == 1 else params.namespace,
        "digest": manifests.digest_of(text),
        "history": record,
    }


# ---- k8s_verify_digest ----


class K8sVerifyDigestParams(KubeParams):
    """Parameters of the ``k8s_verify_digest`` action."""

    deployments: list[str] = Field(min_length=1, description="Deployments whose pods are checked.")
    digest: str | None = Field(
        default=None,
        description="The digest every container must run (sha256:...), e.g. the build's output.",
    )
    digests: dict[str, str] = Field(
        default_factory=dict,
        description="Digest per deployment or per image name (overrides `digest`).",
    )
    registry_url: str | None = Field(
        default=None,
        description="Look the digest of each container's image tag up in this OCI registry "
        "(HEAD /v2/<name>/manifests/<tag>); default https://<the image's registry>.",
    )
    lookup: bool = Field(
        default=False,
        description="Look digests up in the registry (when `digest` and `digests` name none).",
    )


def image_name(image: str) -> tuple[str, str, str]:
    """(registry host, repository, tag) of an image reference."""
    ref = image.split("@", 1)[0]
    tag = "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag
    return "registry-1.docker.io", ref if rest else f"library/{ref}", tag


def registry_digest(image: str, registry_url: str | None, timeout: float = 10.0) -> str:
    host, repo, tag = image_name(image)
    base = (registry_url or f"https://{host}").rstrip("/")
    accept = ", ".join(
        [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    url = f"{base}/v2/{repo}/manifests/{tag}"
    try:
        with httpx.Client(timeout=timeout, verify=tls.verify()) as http:
            response = http.head(url, headers={"Accept": accept})
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code == 401 and challenge.startswith("Bearer "):
                fields = dict(p.split("=", 1) for p in challenge[7:].split(","))
                fields = {k.strip(): v.strip('"') for k, v in fields.items()}
                token = http.get(
                    fields["realm"],
                    params={
                        "service": fields.get("service", ""),
                        "scope": f"repository:{repo}:pull",
                    },
                ).json()
                bearer = token.get("token") or token.get("access_token")
                response = http.head(
                    url, headers={"Accept": accept, "Authorization": f"Bearer {bearer}"}
                )
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise KubernetesError(f"cannot look up {image} at {url}: {exc}") from exc
    digest = response.headers.get("Docker-Content-Digest")
    if response.status_code != 200 or not digest:
        raise KubernetesError(f"registry lookup of {image}: {response.status_code} at {url}")
    return str(digest)


def _pod_digest(image_id: str) -> str | None:
    return "sha256:" + image_id.rsplit("sha256:", 1)[1] if "sha256:" in image_id else None


class K8sVerifyDigestOutputs(ActionOutputs):
    """Outputs of the ``k8s_verify_digest`` action."""

    pods: int = Field(description="Pods checked.")
    digests: dict[str, Any] = Field(description="The digests the pods run, by deployment.")


class K8sVerifyDigestAction(Action[K8sVerifyDigestParams]):
    """Every running pod of the deployments runs the image digest the build produced.

    Reads each pod's ``status.containerStatuses[].imageID`` (what the node actually
    pulled) and compares it with ``digest`` / ``digests`` (e.g. the build step's output)
    or with the registry's digest of the image tag (``lookup: true``). Lists every pod
    and container that differs. Outputs: ``pods``, ``digests`` (per deployment).
    """

    name = "k8s_verify_digest"
    changes_world = False
    summary = "Check that every pod of the deployments runs the build's image digest."
    Params = K8sVerifyDigestParams
    Outputs = K8sVerifyDigestOutputs
    idempotent = True

    def describe(self, params: K8sVerifyDigestParams, ctx: PlanContext) -> str:
        source = params.digest or (
            "the given digests" if params.digests else "the registry's digest of each tag"
        )
        return f"check the pods of {', '.join(params.deployments)} run {source}"

    def run(self, params: K8sVerifyDigestParams, ctx: StepContext) -> Outcome:
        if not (params.digest or params.digests or params.lookup):
            return Outcome.failure(
                "k8s_verify_digest needs digest, digests or lookup: true", retryable=False
            )
        api, namespace = api_for(params)
        lookups: dict[str, str] = {}
        mismatches: list[str] = []
        seen: dict[str, str] = {}
        pods_checked = 0
        with api:
            for name in params.deployments:
                d = api.deployment(namespace, name)
                if d is None:
                    mismatches.append(f"deployment {namespace}/{name} does not exist")
                    continue
                selector = label_selector(d["spec"].get("selector") or {})
                for pod in api.pods(namespace, selector):
                    status = pod.get("status", {})
                    if status.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                        continue
                    pods_checked += 1
                    for cs in status.get("containerStatuses", []):
                        image = cs.get("image", "")
                        expected = (
                            params.digests.get(name)
                            or params.digests.get(image_name(image)[1])
                            or params.digests.get(image.split("@")[0].rsplit(":", 1)[0])
                            or params.digest
                        )
                        if expected is None:
                            if image not in lookups:
                                lookups[image] = registry_digest(image, params.registry_url)
                            expected = lookups[image]
                        actual = _pod_digest(cs.get("imageID", ""))
                        where = (
                            f"pod {pod['metadata']['name']} container {cs.get('name')} ({image})"
                        )
                        if actual is None:
                            mismatches.append(f"{where} reports no image digest")
                        elif actual != expected:
                            mismatches.append(f"{where} runs {actual}, expected {expected}")
                        else:
                            seen[name] = actual
        detail = "\n".join(mismatches)
        if mismatches:
            return Outcome.failure(
                f"{len(mismatches)} container(s) differ from the build's digest: {mismatches[0]}",
                detail=detail,
                outputs={"pods": pods_checked, "digests": seen},
            )
        if pods_checked == 0:
            return Outcome.failure("no running pod found for " + ", ".join(params.deployments))
        shown = ", ".join(f"{k} {v[:19]}" for k, v in seen.items())
        return Outcome.success(
            f"{pods_checked} pods run the build's digest: {shown}",
            detail=json.dumps(seen, indent=2),
            outputs={"pods": pods_checked, "digests": seen},
        )
