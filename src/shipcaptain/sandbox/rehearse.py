"""``shipcaptain rehearse``: a team's runbook in the sandbox world, with injected faults.

The world is the demo's (:func:`shipcaptain.sandbox.demo.demo_world`): the app repository
with its bare origin and the GitHub double, a PostgreSQL primary with a streaming replica,
the Kubernetes API double, a real Prometheus scraping the sandbox app, the Slack double.
The runbook's integrations are mapped onto it (:mod:`rehearse_endpoints`); a rehearsal
refuses to start while a step would reach anything else.

One world serves every fault: each fault is one release (its own version), armed before
it starts, injected at its moment while it runs, healed after it ends. The app's build,
error rate and latency follow what the Kubernetes double really runs: a rollback that puts
the previous images back brings the previous build hash back. Each release gives one
scorecard row (:mod:`rehearse_report`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from pydantic import SecretStr

from shipcaptain import tls
from shipcaptain.errors import ShipError, UsageError
from shipcaptain.evidence import write_bundle
from shipcaptain.runbook.loader import LoadedRunbook, load_runbook_file
from shipcaptain.sandbox.cluster import RUNNING
from shipcaptain.sandbox.demo import (
    DemoWorld,
    _run_in_process,
    _run_with_crash,
    _with_slack,
    demo_world,
)
from shipcaptain.sandbox.doubles.kubernetes_api import RESOURCES
from shipcaptain.sandbox.doubles.pagerduty import PagerDutyDouble
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.sandbox.people import TeamPeople
from shipcaptain.sandbox.postgres import PostgresServer
from shipcaptain.sandbox.prometheus import FIRST_DATA
from shipcaptain.sandbox.rehearse_endpoints import (
    MAPPED,
    Endpoint,
    fill_params,
    outside_endpoints,
)
from shipcaptain.sandbox.rehearse_faults import FAULTS, Fault
from shipcaptain.sandbox.rehearse_material import Material, apply_manifests, lay, place
from shipcaptain.sandbox.tcp_proxy import TcpProxy
from shipcaptain.sandbox.workspace import git
from shipcaptain.settings import ENV_PREFIX, Settings
from shipcaptain.store import GateRecord, StepRunRecord
from shipcaptain.team import load_team_file

PREVIOUS_BUILD = "0000000"  # what the sandbox app serves before any release
FAILED = ("failed", "timed_out")


class RehearsalRefused(UsageError):
    """A step would reach an endpoint outside the sandbox."""

    def __init__(self, found: list[Endpoint]) -> None:
        self.found = found
        super().__init__(
            "the rehearsal does not start: these steps would reach endpoints outside the "
            "sandbox\n" + "\n".join(f"  {e}" for e in found)
        )


def check_endpoints(loaded: LoadedRunbook, given: dict[str, str]) -> list[Endpoint]:
    """The runbook with the sandbox's mapping (its values are all on 127.0.0.1)."""
    values: dict[str, Any] = {k: p.default for k, p in loaded.runbook.parameters.items()}
    values.update(given)
    values.update({k: "http://127.0.0.1" for k in MAPPED})
    return outside_endpoints(loaded, values)


def _version_of(image: str, digests: dict[str, str]) -> str | None:
    name, _, digest = image.partition("@")
    if digest and digest in digests:
        return digests[digest]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _rolled_out(dep: dict[str, Any]) -> bool:
    spec, status = dep.get("spec", {}), dep.get("status", {})
    want = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int(dep["metadata"].get("generation", 1))
        and int(status.get("updatedReplicas", 0)) == want
        and int(status.get("availableReplicas", 0)) == want
        and not int(status.get("unavailableReplicas", 0))
    )


@dataclass
class Attempt:
    """One fault's release in the world."""

    world: DemoWorld
    fault: Fault
    version: str
    images: list[str]
    head: str
    cutoff: str
    cutoff_ts: float
    expand_steps: list[str]
    contract_steps: list[str]
    actions: dict[str, str]  # step -> action
    builds: dict[str, str]
    release_id: str = ""
    saved: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    injected_at: datetime | None = None
    detection: tuple[str, datetime, str] | None = None  # step, when, what
    serving: str = RUNNING
    slack: SlackDouble | None = None
    crash_at: str = ""  # the step a fault hits mid-step (kill -9, state database cut)
    #: the proxy in front of the state database (a fault that cuts it)
    state_proxy: TcpProxy | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)
        click.echo(click.style(f"  [rehearse] {self.fault.name}: {text}", fg="red"))

    def steps_of(self, action: str) -> list[str]:
        return [step for step, act in self.actions.items() if act == action]

    def runs(self) -> dict[str, StepRunRecord]:
        return self.world.client.store.latest_step_runs(self.release_id)

    def mark_injected(self) -> None:
        if self.injected_at is None:
            self.injected_at = datetime.now(UTC)

    def detected(self, step: str, at: datetime, what: str) -> None:
        if self.detection is None:
            self.detection = (step, at, what)

    def waiting_for_replicas(self, step: str) -> bool:
        """Whether ``step`` is held for the replicas now: its own replica check waiting
        (its progress line) or one of its guards failing a try."""
        for key, run in self.runs().items():
            text = run.summary.lower()
            if key == step and run.status == "running" and "replica" in text:
                return True
            if key.startswith(f"{step}:guard:") and run.status in FAILED:
                return True
        return False


class Rehearsal:
    def __init__(
        self,
        world: DemoWorld,
        loaded: LoadedRunbook,
        given: dict[str, str],
        report_dir: Path,
        slack: SlackDouble | None = None,
        state_proxy: TcpProxy | None = None,
        *,
        migrations: str | None = None,
        damage_window: float | None = None,
    ) -> None:
        """``migrations``: the team's migrations directory in the sandbox's repository
        (``--migrations``); ``damage_window``: seconds, instead of each fault's own."""
        self.world = world
        self.migrations = migrations
        self.damage_window = damage_window
        self.slack = slack
        self.state_proxy = state_proxy
        self.loaded = loaded
        self.rb = loaded.runbook
        self.given = given
        self.report_dir = report_dir
        self.base = given.get("version", world.version)
        self.count = 0
        self.builds = {RUNNING: PREVIOUS_BUILD}
        self.settle = False
        #: one client for the looks at the app (``httpx.get`` made a TLS context each time)
        self.http = httpx.Client(timeout=5, verify=tls.verify())
        migrate_steps = [s for s in self.rb.steps.values() if s.action == "migrate"]
        self.expand_steps = [s.id for s in migrate_steps if s.with_.get("phase") != "contract"]
        self.contract_steps = [s.id for s in migrate_steps if s.with_.get("phase") == "contract"]

    # ---- the world between faults ----

    def _images(self, version: str) -> list[str]:
        """The images the runbook's k8s_apply steps pin for ``version``."""
        out: list[str] = []
        for step in self.rb.steps.values():
            if step.action != "k8s_apply":
                continue
            for name, tag in (step.with_.get("images") or {}).items():
                out.append(f"{name}:{str(tag).replace('{{ version }}', version)}")
        return out

    def _deployments(self) -> dict[str, list[str]]:
        cluster = self.world.kube.double.cluster
        return {
            f"{d['metadata']['namespace']}/{d['metadata']['name']}": [
                c["image"] for c in d["spec"]["template"]["spec"]["containers"]
            ]
            for d in cluster.list(RESOURCES["deployments"])
        }

    def _health(self) -> tuple[int, str]:
        try:
            answer = self.http.get(self.world.app.health_url)
            return answer.status_code, str(answer.json().get("build", ""))
        except (httpx.HTTPError, ValueError):
            return 0, ""

    def _follow(self, a: Attempt) -> None:
        """The app serves what the cluster runs; the fault's moment comes."""
        cluster = self.world.kube.double.cluster
        digests = {d: img.rsplit(":", 1)[-1] for img, d in cluster.registry.items()}
        api = a.images[0].rsplit(":", 1)[0] if a.images else ""
        for dep in cluster.list(RESOURCES["deployments"]):
            image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
            if not image.startswith(api) or not _rolled_out(dep):
                continue
            version = _version_of(image, digests)
            if version is not None and version != a.serving:
                a.serving = version
                click.echo(f"  [rehearse] the app now serves {version}")
        self.world.app.set_build(self.builds.get(a.serving, PREVIOUS_BUILD))
        if a.fault.effective_after and a.injected_at is None:
            for run in a.runs().values():
                step = self.rb.steps.get(run.step_id)
                if step and step.action == a.fault.effective_after and run.status == "succeeded":
                    a.injected_at = run.ended_at
        bad = a.serving == a.version
        if bad and a.fault.app:
            a.mark_injected()
        self.world.app.set_error_rate(a.fault.app.get("error_rate", 0.0) if bad else 0.0)
        self.world.app.set_delay(a.fault.app.get("delay", 0.0) if bad else 0.0)
        a.fault.during(a)

    def _new_commit(self, version: str, files: dict[str, str]) -> str:
        """Each release its own commit (merged before the freeze, CI green on it), so a
        rollback's build hash says which release serves; with the fault's ``files``."""
        app, env = self.world.sandbox.app, self.world.sandbox.env()
        files = {f"releases/v{version}.md": f"Release notes of v{version} (rehearsal)\n", **files}
        for path, text in files.items():
            (app / path).parent.mkdir(parents=True, exist_ok=True)
            (app / path).write_text(text, encoding="utf-8")
            git("add", path, cwd=app, env=env)
        git("commit", "-q", "-m", f"docs: release notes of v{version}", cwd=app, env=env)
        git("push", "-q", "origin", "main", cwd=app, env=env)
        head = git("rev-parse", "HEAD", cwd=app)
        for check in ("test", "lint", "build"):
            self.world.github.add_check_run(head, check)
        self.world.github.add_status(head, "ci/e2e")
        return head

    def settle_prometheus(self) -> None:
        """Before the next fault, after one that made the app's metrics bad (or stopped
        Prometheus and started a new one): a Prometheus with no history, so the next fault
        is not judged on the last one's samples, still inside the runbook's one-minute
        windows. It forgets the app's samples (its admin API deletes them; a new server
        has none) and waits for new ones."""
        server = self.world.metrics.server
        if server is None:
            return
        server.forget(FIRST_DATA, within=60)
        click.echo(f"  [rehearse] Prometheus {server.url}: none of the last fault's samples")

    # ---- one fault ----

    def attempt(self, fault: Fault) -> dict[str, Any]:
        from shipcaptain.sandbox.rehearse_report import scorecard_row

        began = time.monotonic()
        if self.settle:
            self.settle_prometheus()
            self.settle = False
        world = self.world
        major, minor, patch = [*self.base.split("-")[0].split("."), "0", "0"][:3]
        version = f"{major}.{minor}.{int(patch) + self.count}"
        self.count += 1
        cluster = world.kube.double.cluster
        images = self._images(version)
        for image in images:
            cluster.publish(image)
        saved: dict[str, Any] = {}
        files = fault.files(self, saved) if fault.files else {}
        head = self._new_commit(version, files)
        cutoff_ts = float(int(time.time()) + 1)
        cutoff = datetime.fromtimestamp(cutoff_ts, UTC).isoformat()
        while time.time() < cutoff_ts:
            time.sleep(0.05)
        a = Attempt(
            world=world,
            fault=fault,
            version=version,
            images=images,
            head=head,
            cutoff=cutoff,
            cutoff_ts=cutoff_ts,
            expand_steps=self.expand_steps,
            contract_steps=self.contract_steps,
            actions={s.id: s.action for s in self.rb.steps.values()},
            builds=self.builds,
            slack=self.slack,
            state_proxy=self.state_proxy,
            saved=saved,
        )
        click.echo(click.style(f"\n# fault {fault.name}: {fault.title} (v{version})", bold=True))
        before = {"deployments": self._deployments(), "health": self._health()}
        fault.arm(a)
        self.builds[version] = a.head[:7]
        sandbox = {**world.params(), "version": version, "freeze_cutoff": cutoff}
        # the sandbox's values of the parameters the runbook takes (a team's runbook may
        # take fewer than the ValueCanvas one)
        params = {
            **self.given,
            **{k: v for k, v in sandbox.items() if k in self.rb.parameters},
        }
        record = world.client.create_release(
            world.sandbox.runbook, params, user=world.captain, workdir=world.sandbox.app
        )
        a.release_id = record.id
        if not (fault.app or fault.held or fault.effective_after):  # in force from the start
            a.mark_injected()
        status = self._run(a)
        self._follow(a)  # the last state of the world
        after = {"deployments": self._deployments(), "health": self._health()}
        fault.heal(a)
        if fault.app or fault.fresh_prometheus:
            self.settle = True
        bundle = world.client.evidence_bundle(record.id, user=world.captain)
        evidence = write_bundle(bundle, self.report_dir / "evidence")
        row = scorecard_row(self, a, status, before, after, [str(p) for p in evidence])
        row["seconds"] = round(time.monotonic() - began, 1)  # the fault's share of the time
        return row

    def _crash_step(self) -> str:
        """Where to kill the engine: a step that runs for a while, late in the release."""
        steps = list(self.rb.steps.values())
        for action in ("metrics", "k8s_rollout", "migrate", "github_workflow"):
            for step in steps:
                if step.action == action:
                    return step.id
        return steps[len(steps) // 2].id

    def _run(self, a: Attempt) -> str:
        """Run the release with the sandbox's people answering its gates as the team file
        lets them (a gate nobody may answer is reported and the release cancelled), the
        world followed."""
        world = self.world

        def nobody(gate: GateRecord, why: str) -> None:
            a.saved.setdefault("unanswered", []).append({"step": gate.step_id, "why": why})
            a.note(f"gate {gate.step_id}: nobody in the team may answer it ({why}): cancelled")
            with contextlib.suppress(ShipError):
                world.client.cancel(
                    a.release_id,
                    user=world.captain,
                    reason=f"rehearsal: nobody in the team may answer gate {gate.step_id}",
                )

        people = TeamPeople(
            world.client, a.release_id, self.rb, world.captain, world.tokens, nobody=nobody
        )
        people.start()
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(0.2):
                try:
                    self._follow(a)
                except Exception as exc:  # said in the log; the release goes on
                    click.echo(f"  [rehearse] following the world failed: {exc}")

        follower = threading.Thread(target=follow, name="rehearse-follow", daemon=True)
        follower.start()
        try:
            if a.fault.cut_state_db:
                a.crash_at = self._crash_step()
            if a.fault.kill_worker:
                a.crash_at = self._crash_step()
                a.note(f"kill -9 of the engine process when {a.crash_at} runs, then resume")
                token = world.tokens[world.captain]
                return _run_with_crash(
                    world.settings, world.client, a.release_id, a.crash_at, token
                )
            return _run_in_process(world.settings, world.client, a.release_id, world.sandbox)
        finally:
            stop.set()
            people.stop.set()
            people.join(timeout=5)
            follower.join(timeout=5)


def _faults(names: tuple[str, ...], all_faults: bool) -> list[Fault]:
    if all_faults:
        return list(FAULTS.values())
    if not names:
        raise UsageError(
            f"name a fault (--fault NAME) or --all-faults; faults: {', '.join(FAULTS)}"
        )
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise UsageError(
            f"--fault {', '.join(unknown)}: no such fault; faults: {', '.join(FAULTS)}"
        )
    # the order of FAULTS: faults that leave the world changed come last
    return [f for f in FAULTS.values() if f.name in names]


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """What the world and the releases print goes to the rehearsal's log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # what they log too: a Slack that is down makes its client log every refused call; an
    # unreachable state database, the store, the engine and DBOS each failed connection
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("slack_sdk", "dbos", "shipcaptain")]
    saved = [(logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers = [handler]
        logger.propagate = False
    try:
        with log.open("a", encoding="utf-8") as out, contextlib.redirect_stdout(out):
            yield
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved, strict=True):
            logger.handlers = handlers
            logger.propagate = propagate
        handler.close()


def map_contexts(world: DemoWorld, loaded: LoadedRunbook, given: dict[str, str]) -> list[str]:
    """Every kube context the runbook's Kubernetes steps name becomes a context of the
    sandbox's kubeconfig, on the Kubernetes API double; the names added."""
    values: dict[str, Any] = {k: p.default for k, p in loaded.runbook.parameters.items()}
    values.update({**given, **world.params()})
    rb = loaded.runbook
    named = {
        fill_params(str(step.with_["context"]), values)
        for step in [*rb.steps.values(), *rb.rollback]
        if step.action.startswith("k8s") and step.with_.get("context")
    }
    config = json.loads(world.kube.kubeconfig.read_text(encoding="utf-8"))
    have = {c["name"] for c in config["contexts"]}
    template = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    added = sorted(n for n in named if n not in have and "{" not in n)
    for name in added:
        config["contexts"].append({"name": name, "context": dict(template["context"])})
    world.kube.kubeconfig.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return added


#: settings that reach outside the sandbox: off in a rehearsal (pagers go to a double)
_OUTSIDE: dict[str, Any] = {
    "webhook_url": SecretStr(""),
    "opsgenie_api_key": SecretStr(""),
    "opsgenie_url": "",
    "server": "",
    "audit_anchor_git": "",
    "audit_anchor_webhook": SecretStr(""),
    "audit_key_file": None,
    "audit_anchor_dir": None,
}


def _sandbox_settings(settings: Settings, root: Path, pagerduty: PagerDutyDouble) -> Settings:
    """The rehearsal's settings: a throwaway state database (nothing of the rehearsal
    reaches the team's own), no notifier, pager, server or anchor outside the sandbox
    (PagerDuty is its double), quick retries of a notification (a Slack that is down costs
    seconds, not minutes). The engine processes it starts get the same through their
    environment, where the caller's own ``SHIPCAPTAIN_*`` settings are dropped."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        del os.environ[name]
    os.environ[f"{ENV_PREFIX}PAGERDUTY_ROUTING_KEY"] = pagerduty.routing_key
    os.environ[f"{ENV_PREFIX}PAGERDUTY_URL"] = pagerduty.url
    os.environ[f"{ENV_PREFIX}NOTIFY_BACKOFF"] = "0.1"
    return settings.model_copy(
        update={
            **_OUTSIDE,
            "database_url": "",
            "data_dir": root / "state",
            "notify_backoff": 0.1,
            "pagerduty_routing_key": SecretStr(pagerduty.routing_key),
            "pagerduty_url": pagerduty.url,
        }
    )


@contextlib.contextmanager
def _state_database(chosen: list[Fault]) -> Iterator[TcpProxy | None]:
    """For a fault that cuts the state database: a throwaway PostgreSQL server (the
    sandbox's, like the production stand-in) holds the rehearsal's state, reached through
    a TCP proxy the fault cuts; its URL goes into ``SHIPCAPTAIN_DATABASE_URL`` (the engine
    processes the rehearsal starts use it too). Else nothing: the state stays in SQLite."""
    if not any(f.cut_state_db for f in chosen):
        yield None
        return
    with PostgresServer() as server, TcpProxy(("127.0.0.1", server.port)) as proxy:
        os.environ[f"{ENV_PREFIX}DATABASE_URL"] = _proxied(proxy)
        yield proxy


def _proxied(proxy: TcpProxy | None) -> str:
    """The state database's URL through ``proxy`` ("": the default, SQLite)."""
    return "" if proxy is None else f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"


def run_rehearsal(
    settings: Settings,
    runbook: Path,
    given: dict[str, str],
    *,
    faults: tuple[str, ...],
    all_faults: bool,
    report_dir: Path,
    material: Material | None = None,
    team: Path | None = None,
    damage_window: float | None = None,
) -> dict[str, Any]:
    """Rehearse ``runbook`` with the faults; the report (also written to ``report_dir``).
    ``material``: the team's repository, migrations and manifests (:mod:`rehearse_material`);
    ``team``: the team's own team file (roles, who answers gates) instead of the
    sandbox's; ``damage_window``: seconds, instead of each fault's own."""
    from shipcaptain.sandbox.rehearse_report import write_report

    chosen = _faults(faults, all_faults)
    loaded = load_runbook_file(runbook)
    if team is not None:
        load_team_file(team)  # its mistakes before anything starts
    if found := check_endpoints(loaded, given):
        raise RehearsalRefused(found)
    placed = place(loaded, given, material) if material else None
    if placed is not None and placed.migrations is not None:
        # the team's contract migrations are applied by the first release that reaches the
        # contract phase: the fault that makes one fail goes first
        chosen.sort(key=lambda f: f.name != "contract_migration_fails")
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="shipcaptain-rehearse-"))
    saved_env = dict(os.environ)
    slack = SlackDouble()
    pagerduty = PagerDutyDouble()
    rows: list[dict[str, Any]] = []
    started = stopping = time.monotonic()
    timing: dict[str, float] = {}
    try:
        slack.start()
        pagerduty.start()
        state = _sandbox_settings(settings, root, pagerduty)
        with (
            _quiet(report_dir / "rehearsal.log"),
            _state_database(chosen) as state_proxy,
            demo_world(
                _with_slack(
                    state.model_copy(update={"database_url": _proxied(state_proxy)}), slack
                ),
                root / "world",
                version=given.get("version", "1.4.0"),
                bad_metrics=False,
                bad_image=False,
                runbook=runbook.resolve(),
                team=team.resolve() if team is not None else None,
            ) as world,
        ):
            # the sandbox's Deploy workflow runs for half a second, not the demo's two
            world.github.workflow("deploy.yml").running_seconds = 0.5
            if placed is not None:
                for line in lay(placed, world.sandbox):
                    click.echo(f"  {line}")
                kube = world.kube
                for image in apply_manifests(
                    placed, world.sandbox.app, kube.kubeconfig, kube.double.cluster
                ):
                    click.echo(f"  production before the release runs {image} (sandbox registry)")
            for name in map_contexts(world, loaded, given):
                click.echo(f"  kube context {name}: the sandbox's Kubernetes API double")
            timing["world_setup_s"] = round(time.monotonic() - started, 1)
            click.echo(f"  the sandbox world took {timing['world_setup_s']} s to set up")
            rehearsal = Rehearsal(
                world,
                loaded,
                given,
                report_dir,
                slack,
                state_proxy,
                migrations=placed.migrations if placed is not None else None,
                damage_window=damage_window,
            )
            with rehearsal.http:
                for fault in chosen:
                    rows.append(rehearsal.attempt(fault))
            stopping = time.monotonic()
        timing["world_teardown_s"] = round(time.monotonic() - stopping, 1)
    finally:
        slack.stop()
        pagerduty.stop()
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(root, ignore_errors=True)
    return write_report(
        report_dir,
        runbook,
        rows,
        time.monotonic() - started,
        team=team,
        settings=settings,
        timing=timing,
    )
