"""``k8s_rollout`` (watch deployments roll out, fail fast and say why) and ``k8s_rollback``
(re-apply the last good release's manifests, or ``kubectl rollout undo``, then watch)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from shipcaptain.actions.base import Action, ActionOutputs, Outcome, PlanContext, StepContext
from shipcaptain.actions.k8s import HistoryParams, api_for, kubectl_for
from shipcaptain.integrations import k8s_manifests as manifests
from shipcaptain.integrations.k8s_rollout_status import WatchResult, observe, watch, workload
from shipcaptain.integrations.kubernetes import KubeApi, KubernetesError
from shipcaptain.runbook.durations import PositiveDuration, format_duration


class WatchParams(HistoryParams):
    deployments: list[str] = Field(
        min_length=1,
        description="Workloads to watch, in parallel: a Deployment's name, or kind/name "
        "(deployment/api, statefulset/db, daemonset/agent).",
    )
    timeout: PositiveDuration = Field(
        default=300.0,
        description="How long to wait for the slowest rollout (the step's timeout also applies).",
    )
    max_restarts: int = Field(
        default=3,
        ge=1,
        description="A new pod's container restarting this often fails the rollout.",
    )
    interval: PositiveDuration = Field(
        default=1.0, description="Pause between two reads of a deployment."
    )

    @field_validator("deployments")
    @classmethod
    def _workloads(cls, value: list[str]) -> list[str]:
        for ref in value:
            try:
                workload(ref)
            except KubernetesError as exc:
                raise ValueError(str(exc)) from exc
        return value


class K8sRolloutParams(WatchParams):
    """Parameters of the ``k8s_rollout`` action."""


def _outcome(result: WatchResult, limit: float, what: str = "rollout") -> Outcome:
    lines = [s.line for s in result.states.values()]
    outputs: dict[str, Any] = {
        "deployments": {
            n: ("done" if s.done else "failed" if s.failure else "waiting")
            for n, s in result.states.items()
        },
        "seconds": round(result.seconds, 1),
    }
    if result.ok:
        return Outcome.success(
            f"{what} of {', '.join(result.states)} done in "
            f"{format_duration(round(result.seconds, 1))}",
            detail="\n".join(lines),
            outputs=outputs,
        )
    if result.failures:
        return Outcome.failure(
            f"{what} failed: " + "; ".join(result.failures),
            detail="\n".join([*result.failures, *lines]),
            outputs=outputs,
            retryable=False,
        )
    waiting = [s.line for s in result.states.values() if not s.done]
    return Outcome.failure(
        f"timed out after {format_duration(limit)} waiting for the {what}: " + "; ".join(waiting),
        detail="\n".join(lines),
        outputs=outputs,
    )


def _mark_good(params: WatchParams, api: KubeApi, namespace: str, release_id: str) -> list[str]:
    """Mark this release's applied manifests good once every workload in them is done.

    The records are read through the watch's own ``kubectl proxy``, in one listing: each
    ``kubectl get`` was a process of its own (with a credential plugin, such as EKS's or
    GKE's, one more run of the plugin), and each record was listed twice."""
    kubectl = kubectl_for(params)
    listed = api.items(
        f"/api/v1/namespaces/{params.history_namespace}/configmaps",
        labelSelector=f"{manifests.LABEL_PREFIX}/state=applied",
    )
    marked = []
    for item in listed:
        notes = item["metadata"].get("annotations", {})
        if notes.get(f"{manifests.LABEL_PREFIX}/release-id") != release_id:
            continue
        record = manifests.record_of(item, params.history_namespace)
        for obj in manifests.parse(record.manifests):
            if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
                ns = obj["metadata"].get("namespace") or namespace
                ref = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
                if not observe(api, ns, ref).done:
                    break
        else:
            overlay = notes.get(f"{manifests.LABEL_PREFIX}/overlay-path", "")
            manifests.History(kubectl, params.history_namespace, overlay).mark(record, "good")
            marked.append(record.name)
    return marked


class K8sRolloutOutputs(ActionOutputs):
    """Outputs of the ``k8s_rollout`` action."""

    deployments: dict[str, str] = Field(description="Each deployment: done, failed or waiting.")
    seconds: float = Field(description="How long the watch took.")


class K8sRolloutAction(Action[K8sRolloutParams]):
    """Watch Deployments, StatefulSets and DaemonSets roll out, in parallel, and decide from
    the API's own fields.

    Done the way ``kubectl rollout status`` decides it (observed generation; updated,
    available, no old replica left; a StatefulSet's revisions; a DaemonSet's scheduled,
    updated and available pods). Fails at once, saying why, where kubectl would keep
    waiting: ``ProgressDeadlineExceeded``, CrashLoopBackOff, ImagePullBackOff,
    ErrImagePull, or a new pod restarting ``max_restarts`` times. Running into ``timeout``
    says "timed out", not that the deadline was exceeded. After a crash the watch simply
    starts again (already done when every deployment is rolled out). Once all are done,
    this release's applied manifests are marked good for ``k8s_rollback``.
    Outputs: ``deployments`` (name -> done/failed/waiting), ``seconds``.
    """

    name = "k8s_rollout"
    changes_world = False  # it watches
    summary = (
        "Watch deployments roll out in parallel; fail fast on crash loops, pull errors, deadlines."
    )
    Params = K8sRolloutParams
    Outputs = K8sRolloutOutputs
    idempotent = True

    def describe(self, params: K8sRolloutParams, ctx: PlanContext) -> str:
        return (
            f"watch the rollout of {', '.join(params.deployments)} for up to "
            f"{format_duration(params.timeout)}, failing fast on crash loops, image pull "
            "errors, repeated restarts and ProgressDeadlineExceeded"
        )

    def already_done(self, params: K8sRolloutParams, ctx: StepContext) -> Outcome | None:
        try:
            api, namespace = api_for(params)
        except KubernetesError:  # cannot tell: the run says why
            return None
        with api:
            states = [
                observe(api, namespace, d, max_restarts=params.max_restarts)
                for d in params.deployments
            ]
            if not all(s.done for s in states):
                return None
            _mark_good(params, api, namespace, ctx.release_id)
        return Outcome.success(
            f"{', '.join(params.deployments)} already rolled out",
            already_done=True,
            outputs={"deployments": dict.fromkeys(params.deployments, "done"), "seconds": 0.0},
        )

    def run(self, params: K8sRolloutParams, ctx: StepContext) -> Outcome:
        limit = min(params.timeout, ctx.timeout)
        try:
            api, namespace = api_for(params)
        except KubernetesError as exc:
            return Outcome.failure(str(exc), retryable=False)
        with api:
            result = watch(
                api,
                namespace,
                params.deployments,
                timeout=limit,
                interval=params.interval,
                max_restarts=params.max_restarts,
                progress=ctx.progress,
            )
            outcome = _outcome(result, limit)
            if outcome.ok:
                try:
                    marked = _mark_good(params, api, namespace, ctx.release_id)
                except KubernetesError as exc:
                    ctx.progress(f"could not mark the manifests good: {exc}")
                else:
                    if marked:
                        ctx.progress(f"manifests {', '.join(marked)} marked good")
        return outcome


class K8sRollbackParams(WatchParams):
    """Parameters of the ``k8s_rollback`` action."""

    overlay: str | None = Field(
        default=None,
        min_length=1,
        description="The overlay `k8s_apply` applied (whose history is used). Unset: set "
        "back the images this release's `k8s_set_image` steps changed (`kubectl rollout "
        "undo` of what the release did, and only that).",
    )


class K8sRollbackOutputs(K8sRolloutOutputs):
    """Outputs of the ``k8s_rollback`` action."""

    method: str | None = Field(
        default=None, description="How: re-applied manifests, undo, or images (set back)."
    )
    restored: Any = Field(default=None, description="What was restored.")


class K8sRollbackAction(Action[K8sRollbackParams]):
    """Put back the last good release: re-apply its manifests (kept by ``k8s_apply``), or,
    when no release is known good, ``kubectl rollout undo`` each deployment; then watch
    the rollout like ``k8s_rollout``.

    Secrets are not in the kept manifests, so they stay as they are. An undo is only
    done on a deployment that still runs this release's pod template, so running the
    step again after a crash does not undo the undo. Outputs: ``method``
    (reapply/undo), ``restored`` (the release whose manifests were re-applied),
    ``deployments``, ``seconds``.
    """

    name = "k8s_rollback"
    summary = "Re-apply the last good release's manifests (or kubectl rollout undo) and watch it."
    Params = K8sRollbackParams
    Outputs = K8sRollbackOutputs
    idempotent = True

    def describe(self, params: K8sRollbackParams, ctx: PlanContext) -> str:
        if params.overlay is None:
            return (
                f"set {', '.join(params.deployments)} back to the images they ran before this "
                "release set others (k8s_set_image), and watch the rollout"
            )
        return (
            f"re-apply the last good manifests of {params.overlay} (or kubectl rollout undo "
            f"{', '.join(params.deployments)}) and watch the rollout"
        )

    def run(self, params: K8sRollbackParams, ctx: StepContext) -> Outcome:
        if params.overlay is None:
            return self._images_back(params, ctx)
        kubectl = kubectl_for(params)
        history = manifests.History(kubectl, params.history_namespace, params.overlay)
        try:
            good = history.last_good(before_release=ctx.release_id)
            mine = history.of_release(ctx.release_id)
            api, namespace = api_for(params)
        except KubernetesError as exc:
            return Outcome.failure(str(exc))
        deployments = list(params.deployments)
        with api:
            try:
                if good is not None:
                    ctx.progress(
                        f"re-applying the manifests of release {good.release} ({good.name})"
                    )
                    kubectl.run(
                        "apply",
                        "--server-side",
                        "--force-conflicts",
                        f"--field-manager={manifests.MANAGER}",
                        "-f",
                        "-",
                        stdin=good.manifests,
                    )
                    method, restored = "reapply", good.release
                else:
                    method, restored = "undo", None
                    for name in deployments:
                        self._undo(api, kubectl, namespace, name, mine, ctx)
            except KubernetesError as exc:
                return Outcome.failure(f"rollback failed: {exc}")
            limit = min(params.timeout, ctx.timeout)
            result = watch(
                api,
                namespace,
                deployments,
                timeout=limit,
                interval=params.interval,
                max_restarts=params.max_restarts,
                progress=ctx.progress,
            )
        outcome = _outcome(result, limit, what="rollback")
        if outcome.ok and mine is not None:
            try:
                history.mark(mine, "rolled-back")
            except KubernetesError as exc:
                ctx.progress(f"could not mark {mine.name} rolled back: {exc}")
        how = (
            f"re-applied release {restored}'s manifests"
            if method == "reapply"
            else "kubectl rollout undo"
        )
        return outcome.model_copy(
            update={
                "summary": f"{how}; {outcome.summary}",
                "outputs": {**outcome.outputs, "method": method, "restored": restored},
            }
        )

    def _images_back(self, params: K8sRollbackParams, ctx: StepContext) -> Outcome:
        """Without an overlay: each deployment this release changed with k8s_set_image
        gets the images it ran before (kept on the Deployment); the others are left as
        they are. Setting an image it already runs sets nothing, so a repeat is harmless."""
        from shipcaptain.actions.k8s_set_image import images_before, set_images

        kubectl = kubectl_for(params, ctx.redact)
        try:
            api, namespace = api_for(params)
        except KubernetesError as exc:
            return Outcome.failure(str(exc))
        restored: dict[str, dict[str, str]] = {}
        with api:
            try:
                for ref in params.deployments:
                    kind, name = workload(ref)
                    live = api.workload(namespace, kind, name)
                    before = images_before(live, ctx.release_id) if live else None
                    if live is None or before is None:
                        ctx.progress(f"{ref}: this release set no image on it; not changed")
                        continue
                    now = {
                        c["name"]: c.get("image", "")
                        for c in live["spec"]["template"]["spec"].get("containers", [])
                    }
                    back = {c: i for c, i in before.items() if c in now and now[c] != i}
                    if back:
                        set_images(kubectl, namespace, name, back, ctx)
                    else:
                        ctx.progress(f"{ref} already runs {', '.join(before.values())}")
                    restored[ref] = before
            except KubernetesError as exc:
                return Outcome.failure(f"rollback failed: {exc}")
            limit = min(params.timeout, ctx.timeout)
            result = watch(
                api,
                namespace,
                list(params.deployments),
                timeout=limit,
                interval=params.interval,
                max_restarts=params.max_restarts,
                progress=ctx.progress,
            )
        outcome = _outcome(result, limit, what="rollback")
        return outcome.model_copy(
            update={
                "summary": f"images set back; {outcome.summary}",
                "outputs": {**outcome.outputs, "method": "images", "restored": restored},
            }
        )

    @staticmethod
    def _undo(
        api: KubeApi,
        kubectl: Any,
        namespace: str,
        name: str,
        mine: manifests.Record | None,
        ctx: StepContext,
    ) -> None:
        """Undo one deployment to what ran before this release, once."""
        kind, name = workload(name)
        if kind != "Deployment":  # kubectl undoes these from ControllerRevisions
            ctx.progress(f"{kind.lower()}/{name}: no good release to re-apply; not undone")
            return
        live = api.deployment(namespace, name)
        if live is None:
            ctx.progress(f"{name} does not exist: nothing to undo")
            return
        args = ["rollout", "undo", f"deployment/{name}", "-n", namespace]
        if mine is not None:
            before = mine.previous.get(name)
            if before is None:
                ctx.progress(f"{name} did not exist before this release: nothing to go back to")
                return
            if manifests.images(live) == before["images"]:
                ctx.progress(f"{name} already runs {', '.join(before['images'])}: not undone")
                return
            if before.get("revision"):
                args.append(f"--to-revision={before['revision']}")
        ctx.progress("$ kubectl " + " ".join(args))
        try:
            kubectl.run(*args)
        except KubernetesError as exc:
            if "no rollout history" not in str(exc):
                raise
            ctx.progress(f"{name} has no earlier revision: nothing to undo")
