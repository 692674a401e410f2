"""``shipcaptain demo``: the whole ValueCanvas runbook, end to end, on one laptop.

What is real: the engine and its checkpoints, the state database (SQLite by default),
git (a tag pushed to a bare origin), HTTP (a local health endpoint serving the build hash),
the production database (a PostgreSQL primary with a streaming read replica, started for
the demo), kubectl and Prometheus, the gates and the people answering them. What stands in
for production: the Kubernetes API and GitHub doubles, and ``sandbox/assets/bin`` (gh,
npm), each labelled ``[sandbox]``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import SecretStr

from shipcaptain.cli.live import follow
from shipcaptain.cli.render import print_release
from shipcaptain.cli.timeline import print_events
from shipcaptain.client import FINISHED, Client
from shipcaptain.engine.engine import Engine
from shipcaptain.errors import PermissionDenied, UsageError
from shipcaptain.evidence import write_bundle
from shipcaptain.identity import authenticate
from shipcaptain.records import Person
from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.sandbox.analysis import DemoMetrics
from shipcaptain.sandbox.cluster import SandboxCluster
from shipcaptain.sandbox.doubles.github import GitHubDouble
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.sandbox.github import PREVIOUS_TAG, prepare_history, start_github
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.markdown_demo import show_markdown_import
from shipcaptain.sandbox.people import DemoPeople
from shipcaptain.sandbox.production_database import ProductionDatabase
from shipcaptain.sandbox.team_setup import set_up_team
from shipcaptain.sandbox.workspace import Sandbox, build_sandbox, git
from shipcaptain.settings import ENV_PREFIX, Settings
from shipcaptain.stop_signal import wait_for_stop
from shipcaptain.store import Store
from shipcaptain.urls import mask_url

CAPTAIN = "casey"
#: with --dashboard, this person's gates wait for someone at the browser
DASHBOARD_PERSON = "fola"


def _open_dashboard(
    settings: Settings, client: Client, root: Path, release_id: str, *, serve: bool
) -> contextlib.ExitStack | None:
    """The dashboard on a free local port, and a token to sign in as a feature owner."""
    if not serve:
        return None
    stack = contextlib.ExitStack()
    from shipcaptain.web.app import create_app
    from shipcaptain.web.server import serving_in_thread

    url = stack.enter_context(
        serving_in_thread(create_app(settings, client=client, runbook_root=root))
    )
    secret = _sign_in_token(client.store)
    click.echo(
        click.style(f"dashboard: {url}/releases/{release_id}", bold=True)
        + f"\n  sign in as {DASHBOARD_PERSON} (Feature Owner) with this sandbox token: {secret}"
        + f"\n  {DASHBOARD_PERSON}'s approvals wait for you there\n"
    )
    return stack


def _sign_in_token(store: Store) -> str:
    """A token of the demo's feature owner (added to the team if it has no such person;
    a person may make their own tokens)."""
    from shipcaptain.identity import create_token

    team = {p.name: p for p in store.list_people() if p.active}
    if DASHBOARD_PERSON not in team:
        team[DASHBOARD_PERSON] = Person(name=DASHBOARD_PERSON, display_name="Fola (demo)")
        store.put_team(
            list(team.values()),
            actor="demo",
            message=f"the demo adds {DASHBOARD_PERSON} to sign in to its dashboard",
            data={"added": [DASHBOARD_PERSON]},
        )
    secret, _ = create_token(
        store,
        DASHBOARD_PERSON,
        expires_in=12 * 3600,
        label="shipcaptain demo --dashboard",
        by=store.get_person(DASHBOARD_PERSON),
    )
    return secret


def _close_dashboard(stack: contextlib.ExitStack | None) -> None:
    """Keep an open dashboard up until Ctrl-C, then stop it."""
    if stack is None:
        return
    # our own handlers (stop_signal.wait_for_stop): a demo started in the background
    # inherits an ignored SIGINT, and Python then never raises KeyboardInterrupt
    with stack:
        click.echo("\nthe dashboard stays up until Ctrl-C (or SIGTERM)")
        wait_for_stop()


def _play_cluster(
    client: Client, release_id: str, app: HealthServer, build: str, stop: threading.Event
) -> None:
    """The app serves the new build once the manifests are applied (as the cluster would)."""
    while not stop.wait(0.2):
        latest = client.store.latest_step_runs(release_id)
        rec = latest.get("apply_manifests")
        if rec is not None and rec.status == "succeeded":
            app.set_build(build)
            return


def _run_in_process(settings: Settings, client: Client, release_id: str, sandbox: Sandbox) -> str:
    engine = Engine(
        settings, executor_id=f"demo-{release_id}", store=client.store, workdir=sandbox.app
    )
    engine.launch()
    try:
        engine.start(release_id, 1)
        return follow(client, release_id).status
    finally:
        engine.shutdown()


def _cli(*args: str) -> list[str]:
    """A CLI child's command line: nothing secret in it (``ps`` shows it to everyone)."""
    return [sys.executable, "-m", "shipcaptain.cli.main", *args]


def _as(settings: Settings, token: str) -> dict[str, str]:
    """The environment of a CLI child acting with ``token`` on the demo's state database
    (its URL, with any password, goes through the environment, not the command line)."""
    return {
        **os.environ,
        f"{ENV_PREFIX}DATABASE_URL": settings.state_url,
        # the same audit key and anchor file as the demo's own process
        f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir),
        f"{ENV_PREFIX}TOKEN": token,
    }


def _run_with_crash(
    settings: Settings, client: Client, release_id: str, crash_at: str, token: str
) -> str:
    """Run the release in a child process, kill -9 it when ``crash_at`` starts, then resume."""
    child = subprocess.Popen(
        _cli("release", "resume", release_id, "--json"),
        stdout=subprocess.DEVNULL,
        env=_as(settings, token),
    )
    seen = 0
    killed = False
    while True:
        events = client.store.list_events(release_id=release_id, after_seq=seen)
        seen = max([seen, *(e.seq for e in events)])
        print_events(events)
        rec = client.store.latest_step_runs(release_id).get(crash_at)
        if not killed and rec is not None and rec.status in ("running", "waiting"):
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            killed = True
            click.echo(
                click.style(
                    f"\n  [demo] kill -9 of the engine process (pid {child.pid}) "
                    f"while {crash_at} runs\n",
                    fg="red",
                    bold=True,
                )
            )
            time.sleep(0.5)
            click.echo(
                click.style(f"  [demo] $ shipcaptain release resume {release_id}\n", fg="yellow")
            )
            child = subprocess.Popen(
                _cli("release", "resume", release_id, "--json"),
                stdout=subprocess.DEVNULL,
                env=_as(settings, token),
            )
        if client.get(release_id).status in FINISHED and child.poll() is not None:
            break
        if child.poll() is not None and client.get(release_id).status not in FINISHED:
            click.echo(f"  [demo] the engine process exited with {child.returncode}", err=True)
            break
        time.sleep(settings.poll_interval)
    if not killed:
        click.echo(f"  [demo] step {crash_at} never started, so nothing was killed", err=True)
    return client.get(release_id).status


def _look_again(
    settings: Settings, release_id: str, client: Client, root: Path, captain: str
) -> None:
    click.echo(f"  state: {mask_url(settings.state_url)}\n  workspace: {root}")
    where = (
        f"--database-url '{mask_url(settings.state_url)}'"
        if settings.database_url
        else f"--data-dir {settings.data_dir}"
    )
    click.echo(f"  look again: shipcaptain {where} release show {release_id}")
    click.echo("  (as casey: shipcaptain login, with the token in the demo's data dir)")


def show_audit(client: Client, release_id: str, root: Path, who: str) -> bool:
    """What `audit anchor`, `audit verify`, `audit export` and an auditor's `audit verify
    --bundle` show, for this release; whether everything verified."""
    from shipcaptain.audit.anchors import read_anchors
    from shipcaptain.audit.verify import verify_bundle

    click.echo(click.style("\n#the audit log, anchored and verified", bold=True))
    anchored = client.anchor_audit().anchor
    click.echo(
        f"  anchored: {anchored.size} events, head {anchored.head[:16]}…, signed by key "
        f"{anchored.checkpoint['key_id']} in {anchored.source}"
    )
    check = client.verify_audit()
    state = "intact" if check.ok else f"BROKEN at event #{check.broken_seq}: {check.reason}"
    click.echo(
        f"  audit log: {state} ({check.events_checked} events, each hash-chained and keyed; "
        f"signed checkpoints: {check.anchors_checked})"
    )
    bundle = client.evidence_bundle(release_id, user=who)
    paths = write_bundle(bundle, root / "evidence")
    key = root / "evidence" / "audit-public-key.pem"
    key.write_text(client.audit_public_key(), encoding="utf-8")
    click.echo(f"  evidence bundle: {', '.join(str(p) for p in paths)}")
    offline = verify_bundle(
        bundle, read_anchors(client.settings.anchor_path), client.audit_key().public
    )
    verdict = "verified" if offline.ok else f"BROKEN: {offline.reason}"
    click.echo(
        f"  bundle checked as an auditor would (bundle, anchor file, public key): {verdict}\n"
        f"  again: shipcaptain audit verify --bundle {paths[0]} "
        f"--anchor {client.settings.anchor_path} --public-key {key}"
    )
    return check.ok and offline.ok


def run_demo(
    settings: Settings,
    *,
    workspace: Path | None,
    version: str,
    crash_at: str | None,
    bad_metrics: bool = False,
    bad_image: bool = False,
    dashboard: bool = False,
) -> int:
    root = (workspace or Path(tempfile.mkdtemp(prefix="shipcaptain-demo-"))).resolve()
    slack = SlackDouble()
    slack.start()
    try:
        return _run_demo(
            _with_slack(settings, slack),
            slack,
            root,
            version=version,
            crash_at=crash_at,
            bad_metrics=bad_metrics,
            bad_image=bad_image,
            dashboard=dashboard,
        )
    finally:
        slack.stop()


def _with_slack(settings: Settings, slack: SlackDouble) -> Settings:
    """The demo's settings with its comms going to the sandbox Slack (and the same for the
    engine processes it starts, through their environment)."""
    found = {
        "slack_token": slack.token,
        "slack_api_url": slack.api_url,
        "slack_webhook_url": slack.webhook_url,
    }
    os.environ.update({f"SHIPCAPTAIN_{k.upper()}": v for k, v in found.items()})
    return settings.model_copy(
        update={
            "slack_token": SecretStr(slack.token),
            "slack_api_url": slack.api_url,
            "slack_webhook_url": SecretStr(slack.webhook_url),
        }
    )


def _show_comms(client: Client, slack: SlackDouble, release_id: str) -> None:
    """What the sandbox Slack received in #releases (the release's thread), and the
    release's incidents with their SLA clocks."""
    from datetime import UTC, datetime

    from shipcaptain.incidents import clock_text

    click.echo(click.style("\n#releases in the sandbox Slack [sandbox]", bold=True))
    for message in slack.channel_messages("#releases"):
        if message.via != "api":
            continue
        where = "  └ " if message.thread_ts else "  "
        click.echo(f"{where}{message.text}")
    click.echo(f"  (the incoming webhook received the same {len(slack.webhook_posts)} messages)")
    for inc in client.store.list_incidents():
        if inc.release_id != release_id:
            continue
        click.echo(
            click.style(f"\nincident {inc.id} {inc.severity} {inc.status}: ", fg="red", bold=True)
            + inc.summary
        )
        click.echo(f"  clocks: {clock_text(inc, datetime.now(UTC))}")
        click.echo(f"  look again: shipcaptain incident show {inc.id}; shipcaptain sla report")


@dataclass
class DemoWorld:
    """The sandbox with its services running, the team with a token each, and the state
    database's client: what every kind of demo (and the production-topology tests) runs a
    release of the ValueCanvas runbook in."""

    settings: Settings
    root: Path
    sandbox: Sandbox
    client: Client
    app: HealthServer
    metrics: DemoMetrics
    kube: SandboxCluster
    database: ProductionDatabase
    github: GitHubDouble
    tokens: dict[str, str]
    captain: str
    commit: str
    freeze_cutoff: str
    version: str

    def params(self) -> dict[str, str]:
        """The release's parameters in this sandbox."""
        return {
            "version": self.version,
            "app_url": self.app.url,
            "environment": "production",
            "previous_version": PREVIOUS_TAG,
            "freeze_cutoff": self.freeze_cutoff,
            **self.metrics.params,
            **self.kube.values(),
        }

    def play(self, release_id: str, stop: threading.Event) -> threading.Thread:
        """The cluster serves the new build once its manifests are applied."""
        thread = threading.Thread(
            target=_play_cluster,
            daemon=True,
            args=(self.client, release_id, self.app, self.commit[:7], stop),
        )
        thread.start()
        self.metrics.follow(self.client, release_id)
        return thread


def _captain(client: Client, tokens: dict[str, str], runbook: Path, team: Path) -> str:
    """Who starts the releases: the demo's captain, else the first of the team (a team's
    own team file) who may start the runbook in production."""
    if CAPTAIN in tokens:
        return authenticate(client.store, tokens[CAPTAIN]).name
    rb = load_runbook_file(runbook).runbook
    for name, token in tokens.items():
        try:
            client.authorize(name, "release.start", environment="production", runbook=rb)
        except PermissionDenied:
            continue
        return authenticate(client.store, token).name
    raise UsageError(
        f"nobody in the team file {team} may start {runbook.name} in production "
        "(permission release.start): give someone the role it needs there"
    )


@contextlib.contextmanager
def demo_world(
    settings: Settings,
    root: Path,
    *,
    version: str,
    bad_metrics: bool,
    bad_image: bool,
    runbook: Path | None = None,
    team: Path | None = None,
) -> Iterator[DemoWorld]:
    """Build the sandbox under ``root`` and run its services; their addresses go into this
    process's environment, which the engine processes it starts inherit. ``runbook``: a
    team's runbook to run instead of the sandbox's ValueCanvas one, ``team``: a team's
    team file instead of the sandbox's (``rehearse``)."""
    sandbox = build_sandbox(root)
    if runbook is not None:
        shutil.copyfile(runbook, sandbox.runbook)
    if team is not None:
        shutil.copyfile(team, root / "team.yaml")
    os.environ.update(sandbox.env())
    freeze_cutoff = prepare_history(sandbox)
    github = start_github(sandbox)
    commit = git("rev-parse", "HEAD", cwd=sandbox.app)
    click.echo(
        f"sandbox: {root}\n  app repository {sandbox.app} (origin {sandbox.origin})\n"
        f"  state database {mask_url(settings.state_url)}\n"
    )
    with (
        HealthServer(build="0000000") as app,
        DemoMetrics(app, sandbox, bad=bad_metrics) as metrics,  # Prometheus first (its wait)
        Client(settings) as client,
        github,
        SandboxCluster(root, sandbox.app, version, bad_image=bad_image) as kube,
        ProductionDatabase() as database,
    ):
        os.environ.update(kube.env())
        os.environ.update(database.env())
        metrics.ready()  # Prometheus warmed up while the cluster and the database started
        click.echo(
            f"  production database: primary {database.primary_url}, "
            f"streaming replica {database.replica_url}\n"
        )
        tokens = set_up_team(
            client.store,
            root / "team.yaml",
            settings.data_dir,
            settings.token.get_secret_value(),
            allow=[("production", sandbox.runbook)],
        )
        yield DemoWorld(
            settings=settings,
            root=root,
            sandbox=sandbox,
            client=client,
            app=app,
            metrics=metrics,
            kube=kube,
            database=database,
            github=github,
            tokens=tokens,
            captain=_captain(client, tokens, sandbox.runbook, team or root / "team.yaml"),
            commit=commit,
            freeze_cutoff=freeze_cutoff,
            version=version,
        )


def _run_demo(
    settings: Settings,
    slack: SlackDouble,
    root: Path,
    *,
    version: str,
    crash_at: str | None,
    bad_metrics: bool,
    bad_image: bool,
    dashboard: bool,
) -> int:
    with demo_world(
        settings, root, version=version, bad_metrics=bad_metrics, bad_image=bad_image
    ) as world:
        client, sandbox, tokens, captain = world.client, world.sandbox, world.tokens, world.captain
        loaded = client.load(sandbox.runbook)
        rb = loaded.runbook
        if crash_at and crash_at not in rb.steps:
            from shipcaptain.errors import UsageError

            raise UsageError(f"--crash-at {crash_at!r}: no such step; steps: {', '.join(rb.steps)}")
        record = client.create_release(
            sandbox.runbook, world.params(), user=captain, workdir=sandbox.app
        )
        click.echo(
            f"release {record.id}: {rb.name} v{version} to production, "
            f"started by {CAPTAIN} (Release Captain)\n"
        )
        web = _open_dashboard(settings, client, root, record.id, serve=dashboard)
        stop = threading.Event()
        people = DemoPeople(
            client,
            record.id,
            rb,
            captain,
            tokens,
            leave_to=DASHBOARD_PERSON if dashboard else None,
        )
        people.start()
        cluster = world.play(record.id, stop)
        started = time.monotonic()
        try:
            if crash_at:
                status = _run_with_crash(settings, client, record.id, crash_at, tokens[CAPTAIN])
            else:
                status = _run_in_process(settings, client, record.id, sandbox)
        finally:
            stop.set()
            people.stop.set()
            people.join(timeout=5)
            cluster.join(timeout=5)
        click.echo("")
        print_release(client.show(record.id))
        click.echo(f"\nrelease {record.id} {status} in {time.monotonic() - started:.1f}s")
        world.metrics.report(client, record.id)
        tags = git("ls-remote", "--tags", str(sandbox.origin), cwd=root)
        click.echo(f"  {world.database.replica_report()}\n  tags on origin: {tags or '(none)'}")
        _look_again(settings, record.id, client, root, captain)
        _show_comms(client, slack, record.id)
        show_markdown_import(client, root)
        proven = show_audit(client, record.id, root, captain)
        _close_dashboard(web)
        expected = "rolled_back" if bad_metrics or bad_image else "succeeded"
        return 0 if (status, proven) == (expected, True) else 10
