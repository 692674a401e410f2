"""``k8s_set_image``: ``kubectl set image`` on a Deployment, then watch its rollout.

What a runbook's ``kubectl set image deployment/api api=ghcr.io/acme/api:1.4.0`` does, with
what the command alone does not say: whether the new pods came up (the rollout is watched
like ``k8s_rollout``, failing fast on pull errors and crash loops) and which images ran
before (output ``previous``, container -> image, what a rollback sets back). Running it
again sets nothing when the containers already run those images, and still reports the
images of the revision before (read from the Deployment's ReplicaSets, as
``kubectl rollout undo`` does), so a step repeated after a crash undoes to the right place.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from shipcaptain.actions.base import Action, ActionOutputs, Outcome, PlanContext, StepContext
from shipcaptain.actions.k8s import HistoryParams, api_for, kubectl_for
from shipcaptain.actions.k8s_rollout import _outcome
from shipcaptain.integrations.k8s_rollout_status import watch, workload
from shipcaptain.integrations.kubernetes import KubeApi, KubernetesError, label_selector
from shipcaptain.runbook.durations import PositiveDuration, format_duration

REVISION = "deployment.kubernetes.io/revision"
#: on the Deployment: {"release": id, "images": {container: image}} -- what ran before the
#: release's first ``k8s_set_image`` (``k8s_rollback`` without an overlay sets them back)
IMAGES_BEFORE = "shipcaptain.io/images-before"


def images_before(deployment: dict[str, Any], release_id: str) -> dict[str, str] | None:
    """The images the Deployment ran before release ``release_id`` set others, if it did."""
    raw = deployment.get("metadata", {}).get("annotations", {}).get(IMAGES_BEFORE)
    try:
        kept = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(kept, dict) or kept.get("release") != release_id:
        return None
    images = kept.get("images")
    return {str(k): str(v) for k, v in images.items()} if isinstance(images, dict) else None


def set_images(
    kubectl: Any, namespace: str, name: str, images: dict[str, str], ctx: StepContext
) -> None:
    args = [
        "set", "image", f"deployment/{name}",
        *(f"{c}={image}" for c, image in images.items()), "-n", namespace,
    ]  # fmt: skip
    ctx.progress("$ kubectl " + " ".join(args))
    kubectl.run(*args)


class K8sSetImageParams(HistoryParams):
    """Parameters of the ``k8s_set_image`` action."""

    deployment: str = Field(
        min_length=1, description="The Deployment: its name, or deployment/name."
    )
    images: dict[str, str] = Field(
        min_length=1,
        description="Container name -> image (`*`: every container), as in "
        "`kubectl set image deployment/api api=ghcr.io/acme/api:1.4.0`.",
    )
    timeout: PositiveDuration = Field(
        default=300.0, description="How long to wait for the rollout."
    )
    max_restarts: int = Field(
        default=3, ge=1, description="A new pod's container restarting this often fails it."
    )
    interval: PositiveDuration = Field(default=1.0, description="Pause between two reads.")

    @field_validator("deployment")
    @classmethod
    def _a_deployment(cls, value: str) -> str:
        try:
            kind, _name = workload(value)
        except KubernetesError as exc:
            raise ValueError(str(exc)) from exc
        if kind != "Deployment":
            raise ValueError(f"{value}: k8s_set_image sets the images of a Deployment")
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: dict[str, str]) -> dict[str, str]:
        empty = [c for c, image in value.items() if not c or not image.strip()]
        if empty:
            raise ValueError(f"an image for every container; none for {', '.join(empty)}")
        return value


class K8sSetImageOutputs(ActionOutputs):
    """Outputs of the ``k8s_set_image`` action."""

    deployments: dict[str, str] = Field(description="The deployment: done, failed or waiting.")
    seconds: float = Field(description="How long the watch took.")
    previous: dict[str, str] = Field(
        description="Container -> the image it ran before (what a rollback sets back)."
    )
    changed: list[str] = Field(description="The containers whose image this run set.")


def _containers(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return {
        c["name"]: c.get("image", "")
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]
    }


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _before(api: KubeApi, namespace: str, deployment: dict[str, Any]) -> dict[str, str] | None:
    """The images of the revision before the Deployment's current one (its ReplicaSets)."""
    uid = deployment.get("metadata", {}).get("uid")
    selector = label_selector(deployment.get("spec", {}).get("selector", {}))
    owned = [
        rs
        for rs in api.replicasets(namespace, selector)
        if any(o.get("uid") == uid for o in rs.get("metadata", {}).get("ownerReferences", []))
    ]
    current = _revision(deployment)
    older = [rs for rs in owned if 0 < _revision(rs) < current]
    if not older:
        return None
    return _containers(max(older, key=_revision))


class K8sSetImageAction(Action[K8sSetImageParams]):
    """Set the images of a Deployment's containers (``kubectl set image``) and watch the
    rollout; outputs the images they ran before (``previous``) for a rollback.

    Fails without changing anything when a named container does not exist (naming the
    ones that do). Outputs: ``deployments``, ``seconds``, ``previous`` (container -> image
    before), ``changed`` (the containers this run set).
    """

    name = "k8s_set_image"
    changes_world = True
    summary = "kubectl set image on a Deployment, then watch its rollout; keeps the images before."
    Params = K8sSetImageParams
    Outputs = K8sSetImageOutputs
    idempotent = True

    def describe(self, params: K8sSetImageParams, ctx: PlanContext) -> str:
        shown = ", ".join(f"{c}={i}" for c, i in params.images.items())
        return (
            f"kubectl set image {params.deployment} {shown}, then watch the rollout for up to "
            f"{format_duration(params.timeout)}"
        )

    def run(self, params: K8sSetImageParams, ctx: StepContext) -> Outcome:
        limit = min(params.timeout, ctx.timeout)
        _kind, name = workload(params.deployment)
        try:
            api, namespace = api_for(params)
        except KubernetesError as exc:
            return Outcome.failure(str(exc), retryable=False)
        with api:
            live = api.deployment(namespace, name)
            if live is None:
                return Outcome.failure(
                    f"deployment {namespace}/{name} does not exist", retryable=False
                )
            current = _containers(live)
            unknown = [c for c in params.images if c != "*" and c not in current]
            if unknown:
                return Outcome.failure(
                    f"deployment {namespace}/{name} has no container {', '.join(unknown)} "
                    f"(its containers: {', '.join(current) or 'none'}); nothing was changed",
                    retryable=False,
                )
            wanted = {
                c: params.images.get(c, params.images.get("*", image))
                for c, image in current.items()
                if c in params.images or "*" in params.images
            }
            changed = {c: image for c, image in wanted.items() if current[c] != image}
            kept = images_before(live, ctx.release_id)
            kubectl = kubectl_for(params, ctx.redact)
            if changed:
                previous = {c: current[c] for c in wanted}
                try:
                    if kept is None:  # the release's first change: what ran before it
                        note = json.dumps({"release": ctx.release_id, "images": current})
                        kubectl.run(
                            "annotate", f"deployment/{name}", "-n", namespace, "--overwrite",
                            f"{IMAGES_BEFORE}={note}",
                        )  # fmt: skip
                    set_images(kubectl, namespace, name, changed, ctx)
                except KubernetesError as exc:
                    return Outcome.failure(f"kubectl set image failed: {exc}")
            else:  # set before (a repeat after a crash): what ran before is the revision before
                before = _before(api, namespace, live) or {}
                previous = {c: before.get(c, current[c]) for c in wanted}
                ctx.progress(f"{name} already runs {', '.join(wanted.values())}: nothing to set")
            result = watch(
                api,
                namespace,
                [params.deployment],
                timeout=limit,
                interval=params.interval,
                max_restarts=params.max_restarts,
                progress=ctx.progress,
            )
        outcome = _outcome(result, limit)
        outputs = {**outcome.outputs, "previous": previous, "changed": sorted(changed)}
        return outcome.model_copy(update={"outputs": outputs})
