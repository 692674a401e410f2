"""The programmatic client: everything a person can do with releases.

The CLI, the web UI and the REST API are thin layers over this class. It talks to the
state store and, to steer running releases (decisions, cancel, detached start), to the
engine's database through ``DBOSClient``; it never runs a release itself (see
``shipcaptain.engine.Engine`` for that).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shipcaptain import events, identity
from shipcaptain.engine.ids import (
    CLOCK_QUEUE_NAME,
    DECISION_TOPIC,
    ENGINE_VERSION,
    QUEUE_NAME,
    clock_workflow_id,
    older_engine,
    release_workflow_id,
    step_workflow_id,
)
from shipcaptain.errors import (
    InvalidSettings,
    InvalidState,
    NotFound,
    PermissionDenied,
    ShipError,
    UsageError,
)
from shipcaptain.liveness import engine_health, is_alive
from shipcaptain.records import (
    EngineHealth,
    GateStanding,
    IncidentRecord,
    NotificationRecord,
    Person,
    ReleaseFilter,
    ReleaseProgress,
    RunbookRule,
    utcnow,
)
from shipcaptain.store import (
    AuditCheck,
    DecisionRecord,
    EventRecord,
    GateRecord,
    ReleaseRecord,
    StepRunRecord,
    Store,
    WorkerRecord,
    backend_of,
    open_store,
)
from shipcaptain.store.access import WebSession
from shipcaptain.store.reader import open_reader

# The runbook model, its loader and templating (Jinja), and the plan are imported inside the
# methods that need them: reading the store (release list, workers, incidents) does not.
# The action registry (pydantic) and the settings class (pydantic-settings) are types here:
# a command that only reads the store imports neither.
if TYPE_CHECKING:
    from dbos import DBOSClient

    from shipcaptain.actions.registry import Registry
    from shipcaptain.audit.anchors import Anchored
    from shipcaptain.audit.keys import AuditKey
    from shipcaptain.engine.engine import Engine
    from shipcaptain.engine.system_database import SystemDatabaseEngine
    from shipcaptain.permissions import GateRule, Policy, RolesShape
    from shipcaptain.plan import ReleasePlan, RollbackEntry
    from shipcaptain.rehearsals import RehearsalReport, RehearsalSummary
    from shipcaptain.runbook.loader import LoadedRunbook
    from shipcaptain.runbook.model import Runbook
    from shipcaptain.runbook.outline import OutlineStep
    from shipcaptain.session import LocalSession
    from shipcaptain.settings import Settings

#: checked runbooks a client keeps (by file name and text)
RUNBOOK_CACHE_SIZE = 32
#: gates whose deciders a client keeps (see Client.deciders)
DECIDERS_CACHE_SIZE = 256

ACTIVE = frozenset({"pending", "running", "waiting", "failing", "rolling_back"})
RESUMABLE = frozenset({"failed", "cancelled"})
FINISHED = frozenset({"succeeded", "failed", "cancelled", "rolled_back"})


@dataclass(frozen=True)
class WorkerStatus:
    """A process as ``shipcaptain workers`` shows it."""

    worker: WorkerRecord
    alive: bool
    silent_for: float  # seconds since its last heartbeat
    releases: list[str]  # the unfinished releases it runs


@dataclass(frozen=True)
class StepView:
    id: str
    phase: str
    title: str
    action: str
    needs: list[str]
    record: StepRunRecord | None

    @property
    def status(self) -> str:
        return self.record.status if self.record else "pending"


@dataclass(frozen=True)
class ReleaseView:
    release: ReleaseRecord
    steps: list[StepView]
    gates: list[GateRecord]
    events: list[EventRecord] = field(default_factory=list)
    notifications: list[NotificationRecord] = field(default_factory=list)
    incidents: list[IncidentRecord] = field(default_factory=list)
    decisions: list[DecisionRecord] = field(default_factory=list)
    """Every decision taken at the release's gates, with the evidence each person saw."""
    engine: EngineHealth | None = None
    """Whether the process running it is alive, and what to do when nobody runs it."""
    parse_runbook: Callable[[], Runbook] | None = field(default=None, repr=False, compare=False)
    """How to get the release's runbook (the model), asked for only when used: ``release
    show`` lists the steps from the runbook's outline and needs no model."""

    @property
    def runbook(self) -> Runbook:
        """The release's runbook, parsed when first asked for."""
        if self.parse_runbook is None:
            raise ValueError(f"no runbook given for the view of {self.release.id}")
        return self.parse_runbook()

    @property
    def waiting_gates(self) -> list[GateRecord]:
        return [g for g in self.gates if g.status == "waiting" and g.run == self.release.run]


@dataclass(frozen=True)
class RollbackRequest:
    """A rollback the captain asked for: its run (None when a forward fix was recorded
    instead) and what the rollback workflow is given."""

    release_id: str
    run: int | None
    request: dict[str, Any]


@dataclass(frozen=True)
class ResumeAction:
    """What ``resume`` decided: start a new run, or take over an orphaned one."""

    kind: str  # "new_run" or "take_over"
    run: int
    reason: str


class Client:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        store: Store | None = None,
        read_only: bool = False,
    ) -> None:
        self.settings = settings
        self._registry = registry
        self._store = store
        self.read_only = read_only
        """Only reads the state database: a current one is opened read-only without
        SQLAlchemy (:func:`~shipcaptain.store.reader.open_reader`)."""
        self._dbos: DBOSClient | None = None
        self._dbos_engine: SystemDatabaseEngine | None = None
        # checked runbooks by (file name, text): checking one is pure, and parsing the YAML
        # with its line numbers costs ~0.1 s for 20 steps, paid again by every release
        # queued from the same file and every refresh of the live view
        self._checked: dict[tuple[str, str], Any] = {}
        # who may decide a gate, by gate state (see deciders)
        self._deciders: dict[tuple[Any, ...], tuple[Policy, tuple[str, ...]]] = {}

    # ---- plumbing ----

    @property
    def registry(self) -> Registry:
        """The actions runbooks may use (the installed ones unless given)."""
        if self._registry is None:
            from shipcaptain.actions.registry import registry

            self._registry = registry
        return self._registry

    @property
    def store(self) -> Store:
        if self._store is None:
            url = self.settings.state_url
            store: Store | None = open_reader(url) if self.read_only else None
            if store is None:
                if not self.settings.database_url:
                    self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                store = open_store(url)
                store.use_audit_key(self.audit_key)
                store.migrate()
            else:
                store.use_audit_key(self.audit_key)
            self._store = store
        return self._store

    def as_person(self, person: Person) -> LocalSession:
        """This client acting as ``person``: the client contract
        (:class:`shipcaptain.contract.Service`) with the acting person bound."""
        from shipcaptain.session import LocalSession

        return LocalSession(self, lambda: person)

    def acting_as(self, name: str) -> LocalSession:
        """This client acting as the person ``name``, authenticated already (the web
        layer's signed-in viewer): their record is read when first needed."""
        from shipcaptain.session import LocalSession

        return LocalSession(self, lambda: self.store.get_person(name))

    def session(self, token: str) -> LocalSession:
        """This client acting as the person ``token`` belongs to (checked on first use:
        AuthenticationFailed if it is unknown, expired or revoked)."""
        from shipcaptain.session import LocalSession

        return LocalSession(self, lambda: identity.authenticate(self.store, token))

    def open(self) -> None:
        """Open (and migrate) the state database now: a bad URL is an error at once."""
        self.store  # noqa: B018 (opening it is the point)

    def host_engine(
        self,
        executor_id: str,
        *,
        settings: Settings | None = None,
        takes_over: bool = False,
        takes_queued: bool = True,
    ) -> Engine:
        """An engine for this process on the client's state database, not launched yet: a
        worker's or the server's own (``takes_over``: it takes over the releases of workers
        that are gone), or a CLI's that runs one release itself (not ``takes_queued``: what
        it took would die with it). ``settings``: the client's, unless a worker changed
        some (its concurrency). The CLI and the web layer host the engine only this way."""
        from shipcaptain.engine.engine import Engine

        return Engine(
            settings or self.settings,
            executor_id=executor_id,
            store=self.store,
            takes_over=takes_over,
            takes_queued=takes_queued,
        )

    @staticmethod
    def engine_functions() -> str:
        """The durable functions an engine process registers (all of them, once the engine
        is imported), as the one line of a worker's or a server's banner."""
        from shipcaptain.engine import functions

        return functions.summary()

    def audit_key(self) -> AuditKey:
        """The audit signing key (SHIPCAPTAIN_AUDIT_KEY_FILE; made on first use)."""
        from shipcaptain.audit.keys import audit_key_of

        return audit_key_of(self.settings.audit_key_path)

    #: how many of the newest events ``audit_key_mismatch`` reads for the key a process
    #: announced
    KEY_ANNOUNCEMENTS_WITHIN = 5000

    def audit_key_mismatch(self) -> str | None:
        """Why this process's audit key is not the one the log is signed with (the newest
        event that carries a MAC was made with another key), or None. A server or worker
        with a key of its own writes events that verify as forged. Names both keys: this
        one, and the one the last engine process that started announced (its
        ``worker.started`` event carries its key's id)."""
        import hmac

        last = self.store.last_event()
        if last is None or last.mac is None:
            return None
        key = self.audit_key()
        if hmac.compare_digest(key.mac(last.hash), last.mac):
            return None
        theirs = "a key no engine process announced"
        recent = self.store.list_events(
            after_seq=max(0, last.seq - self.KEY_ANNOUNCEMENTS_WITHIN),
            limit=self.KEY_ANNOUNCEMENTS_WITHIN,
        )
        for event in reversed(recent):
            announced = event.data.get("audit_key") if event.kind == "worker.started" else None
            if announced and announced != key.id:
                theirs = (
                    f"key {announced}, the key of the {event.data.get('process', 'process')} "
                    f"{event.actor} started on {event.data.get('hostname', '?')} at "
                    f"{event.at:%Y-%m-%d %H:%M:%S}Z"
                )
                break
        return (
            f"this process's audit key {key.id} ({self.settings.audit_key_path}) did not sign "
            f"the newest event of the audit log (event {last.seq}, signed with {theirs}): what "
            "it writes would verify as forged and the releases it ends could not be anchored. "
            "Give every process of this database the same SHIPCAPTAIN_AUDIT_KEY_FILE (copy "
            "the other processes' key file here, or point the setting at it); to rotate the "
            "key on purpose, start this process once with --rotate-audit-key OLD_KEY_FILE (the "
            "key file the log is signed with now)"
        )

    def check_audit_key(self, *, rotate: Path | None) -> str | None:
        """Refuse to start an engine process whose audit key did not sign the newest event
        (``InvalidSettings``, naming both keys and how to fix it), unless ``rotate``: the
        file of the key the log is signed with, retired now for this process's key (a
        deliberate rotation, see :func:`shipcaptain.audit.anchors.rotate_key`); then what
        was found and done is returned, to be said. None when the keys agree."""
        import hmac

        from shipcaptain.audit.anchors import rotate_key
        from shipcaptain.audit.keys import AuditKey

        mismatch = self.audit_key_mismatch()
        if mismatch is None:
            return None
        if rotate is None:
            raise InvalidSettings(mismatch)
        old = AuditKey.load_or_create(rotate.expanduser().resolve(), create=False)
        last = self.store.last_event()
        if last is None or not hmac.compare_digest(old.mac(last.hash), last.mac or ""):
            raise InvalidSettings(
                f"--rotate-audit-key {rotate}: key {old.id} did not sign the newest event of "
                "the audit log either: give the key file the other processes use now"
            )
        rotate_key(self.store, old, self.audit_key(), self.settings)
        return (
            f"the log's key {old.id} is retired for this process's key {self.audit_key().id}: "
            f"its last checkpoint and the rotation checkpoint are in "
            f"{self.settings.anchor_path}; give every other process the new key file"
        )

    def _engine_client(self) -> DBOSClient:
        if self._dbos is None:
            from dbos import DBOS, DBOSClient, DBOSPortableJSONSerializer

            from shipcaptain.engine.ids import dbos_url

            url = dbos_url(self.settings.state_url)
            if backend_of(url) == "postgresql":
                # an engine of ours: DBOS's own would look into the server's postgres
                # database first (engine.system_database)
                from shipcaptain.engine import dbos_private
                from shipcaptain.engine.system_database import CLIENT_POOL, SystemDatabaseEngine

                self._dbos_engine = SystemDatabaseEngine(
                    url, application_name="dbos_transact_client", kept=CLIENT_POOL, most=CLIENT_POOL
                )
                dbos_private.migrate(url, self._dbos_engine.engine)
                self._dbos = DBOSClient(
                    system_database_engine=self._dbos_engine.engine,
                    serializer=DBOSPortableJSONSerializer(),
                )
            else:
                DBOS.migrate(url)
                self._dbos = DBOSClient(
                    system_database_url=url, serializer=DBOSPortableJSONSerializer()
                )
        return self._dbos

    def close(self) -> None:
        if self._dbos is not None:
            self._dbos.destroy()
            self._dbos = None
        if self._dbos_engine is not None:
            self._dbos_engine.dispose()
            self._dbos_engine = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- runbooks ----

    def _remember(self, key: tuple[str, str], value: Any) -> None:
        if len(self._checked) >= RUNBOOK_CACHE_SIZE:
            self._checked.pop(next(iter(self._checked)), None)  # the oldest
        self._checked[key] = value

    def load(self, path: str | Path) -> LoadedRunbook:
        """The checked runbook in the file at ``path`` (the same object while the file's
        text is the same)."""
        from shipcaptain.runbook.loader import load_runbook_file

        try:
            text: str | None = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError):
            text = None  # load_runbook_file says what is wrong with the file
        key = (f"file:{path}", text or "")
        cached = self._checked.get(key) if text is not None else None
        if cached is not None:
            return cast("LoadedRunbook", cached)
        loaded = load_runbook_file(path, registry=self.registry)
        if loaded.text == text:
            self._remember(key, loaded)
        return loaded

    def plan(self, path: str | Path, given: dict[str, str]) -> ReleasePlan:
        from shipcaptain.plan import make_plan
        from shipcaptain.runbook.templating import resolve_parameters

        loaded = self.load(path)
        values = resolve_parameters(loaded.runbook, given)
        return make_plan(loaded.runbook, values, self.registry, workdir=Path(path).parent)

    # ---- releases ----

    def create_release(
        self,
        path: str | Path,
        given: dict[str, str],
        *,
        user: str,
        workdir: str | Path | None = None,
    ) -> ReleaseRecord:
        """Validate the runbook and the values, then record a pending release."""
        from shipcaptain.runbook.environment import release_environment
        from shipcaptain.runbook.outline import outline_json
        from shipcaptain.runbook.templating import resolve_parameters

        loaded = self.load(path)
        rb = loaded.runbook
        values = resolve_parameters(rb, given)
        environment = release_environment(rb, values)
        self._team_environments_declared(rb)
        version = values.get("version")
        self.authorize_start(user, environment=environment, runbook=rb, digest=loaded.digest)
        record = ReleaseRecord(
            runbook_name=rb.name,
            runbook_digest=loaded.digest,
            runbook_text=loaded.text,
            runbook_path=str(Path(path).resolve()),
            environment=environment,
            started_by=user,
            params=values,
            workdir=str(Path(workdir or Path(path).resolve().parent).resolve()),
        )
        created = (
            events.ReleaseCreated,
            user,
            f"{user} created the release of {rb.name}"
            + (f" v{version}" if version else "")
            + f" to {environment}",
            {  # the release as the evidence bundle shows it (made from the audit log alone)
                "params": values,
                "runbook": rb.name,
                "runbook_digest": loaded.digest,
                "environment": environment,
                "steps": [
                    {"id": sid, "phase": rb.phase_of[sid], "action": rb.steps[sid].action}
                    for sid in rb.topological_order()
                ],
            },
        )
        # the roles too: a decision's, a cancel's or a resume's check reads them without
        # parsing the runbook again (release_roles)
        roles = {rid: role.members for rid, role in rb.roles.items()}
        self.store.create_release(record, event=created, outline=outline_json(rb.outline(), roles))
        if loaded.path is not None and loaded.path.suffix.lower() not in (".md", ".markdown"):
            # the text recorded is the file's: what runbook_of would parse from it again
            self._remember(self._release_key(record), rb)
        return record

    def _team_environments_declared(self, rb: Runbook) -> None:
        """A team whose roles or permissions differ by environment needs the runbook to say
        which environment a release is in (raises UsageError)."""
        from shipcaptain.runbook.environment import relies_on_team_environments

        team = self.store.read_team()
        named = relies_on_team_environments(
            [p.roles for p in team.people if p.active], team.permissions
        )
        if named and rb.environment is None:
            raise UsageError(
                f"runbook {rb.name!r} declares no environment, but the team gives roles or "
                f"permissions per environment ({', '.join(named)}): declare it at the top of "
                'the runbook, environment: "{{ environment }}" (or a fixed name), so the '
                "right roles apply"
            )

    def enqueue(self, release_id: str, run: int) -> None:
        """Hand a run of a release to whichever worker takes it from the queue."""
        self._engine_client().enqueue(
            {
                "workflow_name": "shipcaptain.release",
                "queue_name": QUEUE_NAME,
                "workflow_id": release_workflow_id(release_id, run),
                "app_version": ENGINE_VERSION,
            },
            release_id,
            run,
        )

    def get(self, release_id: str) -> ReleaseRecord:
        return self.store.get_release(release_id)

    def list_releases(self, which: ReleaseFilter | None = None) -> list[ReleaseRecord]:
        return [self._with_queue(r) for r in self.store.list_releases(which)]

    def _with_queue(self, release: ReleaseRecord) -> ReleaseRecord:
        """``release`` marked ``queued_for_worker`` when a worker took it over and it
        waits on the release queue for a worker with room."""
        if release.status in FINISHED or release.executor_id is None:
            return release
        if self.store.awaiting_pickup(release.id) is None:
            return release
        return dataclasses.replace(release, queued_for_worker=True)

    def live_releases(
        self, *, environment: str | None = None, runbook: str | None = None
    ) -> list[ReleaseRecord]:
        """What is live: of each runbook in each environment (optionally one of each), the
        newest release that succeeded (a rolled-back one is not live), by environment."""
        return self.store.live_releases(environment=environment, runbook=runbook)

    def active_releases(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[ReleaseRecord]:
        """Every release not finished yet, newest first (optionally of one environment,
        runbook and/or starter)."""
        return self.store.active_releases(
            environment=environment, runbook=runbook, started_by=started_by
        )

    def gates_waiting_for(
        self,
        user: str,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[tuple[ReleaseRecord, GateRecord]]:
        """The gates waiting for ``user``: open gates of waiting releases (optionally of one
        environment, runbook and/or starter) they have not decided yet and may decide
        (:meth:`why_not_decide`), newest release first."""
        from shipcaptain.permissions import policy_of

        policy = policy_of(self.store)
        person = policy.person(user)
        return [
            (release, gate)
            for release, gate in self.store.waiting_gates_undecided_by(
                user, environment=environment, runbook=runbook, started_by=started_by
            )
            if not self.why_not_decide(user, release, gate, policy=policy, person=person)
        ]

    def deciders(self, release: ReleaseRecord, gate: GateRecord) -> list[str]:
        """Everyone on the team who may decide ``gate`` of ``release`` (the one permission
        check, and their own part of a gate in parts), in the team's order. Worked out once
        per gate state: kept while the gate (release, step, run, opening) and the team
        (people and policy) stay the same; a decision does not change who may decide."""
        from shipcaptain.permissions import policy_of

        policy = policy_of(self.store)  # its people too
        key = (release.id, gate.step_id, gate.run, gate.opened_at)
        kept = self._deciders.get(key)
        if kept is not None and kept[0] == policy:
            return list(kept[1])
        found = [
            p.name
            for p in policy.people
            if p.active and not self.why_not_decide(p.name, release, gate, policy=policy, person=p)
        ]
        if len(self._deciders) >= DECIDERS_CACHE_SIZE:
            self._deciders.pop(next(iter(self._deciders)), None)  # the oldest
        self._deciders[key] = (policy, tuple(found))
        return found

    def why_not_decide(
        self,
        user: str,
        release: ReleaseRecord,
        gate: GateRecord,
        *,
        policy: Policy | None = None,
        parts: list[Any] | None = None,
        person: Person | None = None,
    ) -> str:
        """Why ``user`` may not decide ``gate`` of ``release`` (the one permission check, and
        of a gate in parts: some part must be theirs), or "" if they may. ``parts``: the
        user's parts if already known (:meth:`gate_parts_for`); ``policy`` and ``person``: the
        team's and the user's record, if already read."""
        from shipcaptain.permissions import GateRule, policy_of

        if policy is None:  # one read of the team for the check and the parts
            policy = policy_of(self.store)
        try:
            self.authorize(
                user,
                "gate.decide",
                environment=release.environment,
                release=release,
                gate=GateRule.of(gate),
                initiator=gate.evidence.get("initiated_by") if gate.evidence else None,
                policy=policy,
                person=person,
            )
            if parts is None:
                parts = self.gate_parts_for(release, gate, user, policy=policy)
            if gate.evidence.get("parts") and not parts:
                raise PermissionDenied(f"{user} may not decide this gate: no part is theirs")
        except PermissionDenied as exc:
            return str(exc)
        return ""

    def runbook_of(self, release: ReleaseRecord) -> Runbook:
        """The release's runbook, parsed from the text it was started with (the same object
        for the same text)."""
        from shipcaptain.runbook.loader import parse_runbook

        key = self._release_key(release)
        cached = self._checked.get(key)
        if cached is None:
            name = release.runbook_path or release.runbook_name
            cached = parse_runbook(release.runbook_text, name, registry=self.registry)
            self._remember(key, cached)
        return cast("Runbook", cached)

    @staticmethod
    def _release_key(release: ReleaseRecord) -> tuple[str, str]:
        """Where ``runbook_of`` keeps a release's parsed runbook: ``release:<name>``, text."""
        return (f"release:{release.runbook_path or release.runbook_name}", release.runbook_text)

    def release_roles(self, release: ReleaseRecord) -> RolesShape:
        """The roles of the release's runbook and their members, as the permission check
        reads them: from the runbook already parsed here, else the roles recorded with the
        release when it was created (no YAML, no runbook model: a decision, a cancel or a
        resume parses no runbook), else its runbook parsed (a release created before
        roles were recorded)."""
        from shipcaptain.runbook.outline import roles_from_json

        key = self._release_key(release)
        parsed = self._checked.get(key)
        if parsed is not None:
            return cast("Runbook", parsed)
        roles_key = ("roles:" + key[0], key[1])
        found = self._checked.get(roles_key)
        if found is None:
            found = roles_from_json(self.store.release_outline(release.id))
            if found is None:
                return self.runbook_of(release)
            self._remember(roles_key, found)
        return cast("RolesShape", found)

    def outline_of(self, release: ReleaseRecord) -> list[OutlineStep]:
        """The steps of the release's runbook in the order they run (see
        ``shipcaptain.runbook.outline``): from the runbook already parsed here, else the
        outline recorded with the release when it was created, else read from its text
        without the model (a read-only command parses no runbook), else parsed."""
        from shipcaptain.runbook.outline import outline_from_json, read_outline

        key = self._release_key(release)
        parsed = self._checked.get(key)
        if parsed is not None:
            return cast("Runbook", parsed).outline()
        outline_key = ("outline:" + key[0], key[1])
        found = self._checked.get(outline_key)
        if found is None:
            found = (
                outline_from_json(self.store.release_outline(release.id))
                or read_outline(release.runbook_text)
                or self.runbook_of(release).outline()
            )
            self._remember(outline_key, found)
        return cast("list[OutlineStep]", found)

    def show(self, release_id: str, *, events: bool = True) -> ReleaseView:
        """The release's document: its record, steps, gates, events, comms, incidents and
        decisions as the state database held them at one moment."""
        return self.store.at_one_moment(lambda: self._show(release_id, events=events))

    def _show(self, release_id: str, *, events: bool) -> ReleaseView:
        release = self.store.get_release(release_id)
        taken_over = None if release.status in FINISHED else self.store.awaiting_pickup(release_id)
        if taken_over is not None:
            release = dataclasses.replace(release, queued_for_worker=True)
        latest = self.store.latest_step_runs(release_id)
        views = [
            StepView(
                id=s.id,
                phase=s.phase,
                title=s.label,
                action=s.action,
                needs=s.needs,
                record=latest.get(s.id),
            )
            for s in self.outline_of(release)
        ]
        extra = sorted(k for k in latest if k.startswith("rollback/"))
        views += [
            StepView(
                id=k,
                phase="rollback",
                title=k.split("/", 1)[1],
                action="",
                needs=[],
                record=latest[k],
            )
            for k in extra
        ]
        return ReleaseView(
            release=release,
            parse_runbook=lambda: self.runbook_of(release),
            steps=views,
            gates=self.store.list_gates(release_id=release_id),
            events=self.store.list_events(release_id=release_id) if events else [],
            notifications=self.store.list_notifications(release_id),
            incidents=[i for i in self.store.list_incidents() if i.release_id == release_id],
            decisions=self.store.list_decisions(release_id),
            engine=engine_health(
                release,
                self.store.list_workers(),
                now=datetime.now(UTC),
                takeover_after=self.settings.takeover_after,
                taken_over=taken_over,
            ),
        )

    # ---- incidents ----

    def open_incident(
        self, *, severity: str, summary: str, user: str, release_id: str | None = None
    ) -> IncidentRecord:
        """Open an incident with its SLA deadlines (the release's runbook's SLA table, else
        the deployment runbook's), notify the channels and start its durable SLA clock
        (a worker runs it)."""
        from shipcaptain import incidents
        from shipcaptain.notifiers import Message, deliver, notifiers_from
        from shipcaptain.paging import page_incident

        release = self.store.get_release(release_id) if release_id else None
        self.authorize_incident(user, "incident.open", release, f"open a {severity} incident")
        rb = self.runbook_of(release) if release else None
        incident = self.store.open_incident(
            incidents.new_incident(
                slas=incidents.slas_of(rb),
                severity=severity,
                summary=summary,
                opened_by=user,
                opened_at=utcnow(),
                release_id=release_id,
                owners=incidents.owners_of(rb),
            )
        )
        self._engine_client().enqueue(
            {
                "workflow_name": "shipcaptain.incident_clock",
                "queue_name": CLOCK_QUEUE_NAME,
                "workflow_id": clock_workflow_id(incident.id),
                "app_version": ENGINE_VERSION,
            },
            incident.id,
        )
        text = f"{severity} incident {incident.id} opened by {user}: {incident.summary} — "
        deliver(
            self.store,
            notifiers_from(self.settings, rb.comms.channel if rb else None),
            Message(
                text + incidents.clock_text(incident, incident.opened_at),
                release_id=release_id,
                incident_id=incident.id,
                kind="page",
            ),
            attempts=self.settings.notify_attempts,
            backoff=self.settings.notify_backoff,
            actor=user,
        )
        page_incident(self.settings, self.store, incident, "trigger", text.rstrip(" —"))
        return incident

    def incident_action(
        self, incident_id: str, action: str, *, user: str, note: str | None = None
    ) -> IncidentRecord:
        """Acknowledge, mitigate or resolve an incident: who and when are recorded, and
        the P1/P2 alert in PagerDuty and Opsgenie follows."""
        from shipcaptain.paging import page_incident

        if action not in ("acknowledge", "mitigate", "resolve"):
            raise UsageError(f"unknown incident action {action!r}")
        found = self.store.get_incident(incident_id)
        release = self.store.get_release(found.release_id) if found.release_id else None
        self.authorize_incident(user, f"incident.{action}", release, f"{action} {incident_id}")
        incident = self.store.record_incident_action(incident_id, action, user, mitigation=note)
        done = {"acknowledge": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}
        text = f"{incident.severity} incident {incident.id} {done.get(action, action)} by {user}"
        page_incident(
            self.settings, self.store, incident, action, text + (f": {note}" if note else "")
        )
        return incident

    def authorize_incident(
        self, user: str, action: str, release: ReleaseRecord | None, doing: str
    ) -> str | None:
        """An incident's permission (``incident.open|acknowledge|mitigate|resolve``),
        checked in its release's environment; an incident about no release in any
        environment where ``user`` holds a role. A refusal is recorded, then raised."""
        from shipcaptain.permissions import EVERY_ENVIRONMENT, authorize, policy_of

        policy = policy_of(self.store)
        person = policy.person(user)
        if release is not None:
            places = [release.environment]
        else:
            places = [env for env in person.roles if env != EVERY_ENVIRONMENT]
            places.append(EVERY_ENVIRONMENT)
        refusal: PermissionDenied | None = None
        for environment in places:
            try:
                return authorize(person, action, environment=environment, policy=policy)
            except PermissionDenied as exc:
                refusal = refusal or exc
        assert refusal is not None
        self.record(
            events.IncidentRefused.kind,
            user,
            f"{user} may not {doing}: {refusal}",
            {"action": action, "release": release.id if release else None},
        )
        raise refusal

    # ---- people ----

    def authorize(
        self,
        user: str,
        action: str,
        *,
        environment: str,
        runbook: RolesShape | None = None,
        release: ReleaseRecord | None = None,
        gate: GateRule | None = None,
        initiator: str | None = None,
        as_role: str | None = None,
        policy: Policy | None = None,
        person: Person | None = None,
    ) -> str | None:
        """The one permission check (:func:`shipcaptain.permissions.authorize`) for the
        person ``user`` of the store's team (``policy``: the team's, ``person``: ``user``'s
        record, if already read; ``runbook``: the roles of the runbook acted on, else those
        of ``release``'s: :meth:`release_roles`); raises PermissionDenied."""
        from shipcaptain.permissions import authorize, policy_of

        if runbook is None and release is not None:
            runbook = self.release_roles(release)
        if policy is None:
            policy = policy_of(self.store)
        return authorize(
            person if person is not None and person.name == user else policy.person(user),
            action,
            environment=environment,
            policy=policy,
            runbook=runbook,
            release=release,
            gate=gate,
            initiator=initiator,
            as_role=as_role,
        )

    def authorize_start(
        self, user: str, *, environment: str, runbook: Runbook, digest: str
    ) -> str | None:
        """May ``user`` start ``runbook`` (text of sha256 ``digest``) in ``environment``?
        The one start check (:func:`shipcaptain.permissions.authorize_start`): the team's
        roles and the environment's allow-list. A refusal is recorded, then raised."""
        from shipcaptain.permissions import authorize_start, policy_of

        policy = policy_of(self.store)
        try:
            return authorize_start(
                policy.person(user),
                environment=environment,
                runbook=runbook,
                digest=digest,
                policy=policy,
            )
        except PermissionDenied as exc:
            self.record(
                events.ReleaseRefused.kind,
                user,
                f"{user} may not start {runbook.name} in {environment}: {exc}",
                {"runbook": runbook.name, "digest": digest, "environment": environment},
            )
            raise

    def gate_parts_for(
        self, release: ReleaseRecord, gate: GateRecord, user: str, *, policy: Policy | None = None
    ) -> list[Any]:
        """Of a gate in parts (``evidence["parts"]``, e.g. a changelog sign-off), the parts
        ``user`` answers for: what they are shown and what their decision keeps (``policy``:
        the team's, if already read)."""
        from shipcaptain.permissions import gate_parts_of, policy_of, roles_of

        parts = gate.evidence.get("parts") if gate.evidence else None
        if not parts:
            return []
        rb = self.release_roles(release)
        if policy is None:
            policy = policy_of(self.store)
        held = roles_of(policy.person(user), rb, release.environment, policy)
        return [parts[i] for i in gate_parts_of(gate.evidence, user, held)]

    def decide(
        self,
        release_id: str,
        step_id: str,
        *,
        user: str,
        decision: str,
        comment: str = "",
        role: str | None = None,
        wait: float = 5.0,
    ) -> str:
        """Approve or reject a waiting gate (checklists: approve = confirm).

        Checked here for a quick, clear answer, and again by the engine, whose check is the
        one recorded. Returns "recorded" once the engine recorded it, or "sent" if no
        engine took it within ``wait`` seconds (it will when the release runs again).
        A second decision by the same person is refused (InvalidState), and so is one the
        engine turned down (PermissionDenied, with the engine's reason)."""
        from shipcaptain.permissions import GateRule

        release = self.store.get_release(release_id)
        gate = self._waiting_gate(release, step_id)
        if any(d.user == user for d in self._decisions(release_id, step_id, gate.run)):
            self.store.append_event(
                release_id, step_id, events.GateRefused.kind, user,
                f"{user} already decided this gate; the second decision was refused",
            )  # fmt: skip
            raise InvalidState(
                f"{user} already decided the gate {step_id!r} of release {release_id}: "
                "a second decision is refused (each person counts once)"
            )
        rule = GateRule.of(gate)
        self.authorize(
            user,
            "gate.decide",
            environment=release.environment,
            release=release,
            gate=rule,
            initiator=gate.evidence.get("initiated_by") if gate.evidence else None,
            as_role=role,
        )
        seen = self.store.list_events(release_id=release_id)
        after = seen[-1].seq if seen else 0
        message = {"decision": decision, "user": user, "role": role, "comment": comment}
        self._engine_client().send(
            step_workflow_id(release_id, gate.run, step_id), message, DECISION_TOPIC
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if any(d.user == user for d in self._decisions(release_id, step_id, gate.run)):
                return "recorded"
            for event in self.store.list_events(release_id=release_id, after_seq=after):
                if (
                    event.kind == events.GateRefused.kind
                    and event.step_id == step_id
                    and (event.actor == user)
                ):
                    raise PermissionDenied(f"the engine refused the decision: {event.message}")
            time.sleep(0.1)
        return "sent"

    def _decisions(self, release_id: str, step_id: str, run: int) -> list[DecisionRecord]:
        return [d for d in self.store.list_decisions(release_id, step_id) if d.run == run]

    def _waiting_gate(self, release: ReleaseRecord, step_id: str) -> GateRecord:
        try:
            gate = self.store.get_gate(release.id, step_id, release.run)
        except LookupError:
            gate = None
        if gate is None:
            raise NotFound(
                f"step {step_id!r} of release {release.id} is not a gate that has opened"
            )
        if gate.status != "waiting":
            raise InvalidState(
                f"the gate {step_id!r} of release {release.id} is already {gate.status}"
            )
        return gate

    # ---- rollback ----

    def rollback_preview(self, release_id: str) -> tuple[list[RollbackEntry], list[str]]:
        """The rollback plan of a release given what actually ran, and the contract
        migrations it passed (the points of no return)."""
        from shipcaptain.plan import describe_rollback, points_of_no_return

        release = self.store.get_release(release_id)
        rb = self.runbook_of(release)
        results = self._results(release_id)
        entries = describe_rollback(
            rb,
            self.registry,
            dict(release.params),
            results,
            workdir=Path(release.workdir) if release.workdir else None,
        )
        return entries, points_of_no_return(rb, results)

    def _results(self, release_id: str) -> dict[str, dict[str, Any]]:
        return {
            sid: {"status": rec.status, "summary": rec.summary, "outputs": dict(rec.outputs)}
            for sid, rec in self.store.latest_step_runs(release_id).items()
        }

    def request_rollback(
        self,
        release_id: str,
        *,
        user: str,
        reason: str,
        forward_fix: str | None = None,
        restore_procedure: str | None = None,
    ) -> RollbackRequest:
        """The captain asks to roll a finished release back (it succeeded, or failed).

        Checks the initiator, refuses past the point of no return unless the team chose a
        forward fix (recorded; nothing is rolled back) or a restore procedure (recorded; the
        rollback goes ahead), then begins a new run of the release for the rollback; an
        on-call SRE other than ``user`` approves it before anything is undone."""
        from shipcaptain.permissions import check_rollback, policy_of
        from shipcaptain.plan import points_of_no_return, rollback_plan

        if not reason.strip():
            raise UsageError("--reason: say why the release is rolled back")
        if forward_fix and restore_procedure:
            raise UsageError("choose either --forward-fix or --restore-procedure, not both")
        release = self.store.get_release(release_id)
        rb = self.runbook_of(release)
        if release.status in ACTIVE:
            raise InvalidState(
                f"release {release_id} is {release.status}; cancel it first "
                f"(shipcaptain release cancel {release_id}), then roll it back"
            )
        if release.status == "rolled_back":
            raise InvalidState(f"release {release_id} is already rolled back")
        policy = policy_of(self.store)
        if policy.team:
            role = self.authorize(
                user, "rollback.initiate", environment=release.environment, runbook=rb,
                policy=policy,
            )  # fmt: skip
        else:
            role = check_rollback(
                rb, "rollback.initiate", user=user, environment=release.environment
            )
        results = self._results(release_id)
        blocked = points_of_no_return(rb, results)
        if blocked and not (forward_fix or restore_procedure):
            raise InvalidState(
                f"release {release_id} passed the point of no return: {', '.join(blocked)} "
                "ran its contract migrations, and the previous version needs the schema they "
                'dropped. Choose --forward-fix "..." (a new release fixes it; nothing is '
                'rolled back) or --restore-procedure "..." (you restore the schema that '
                "way; the app rollback then goes ahead). Either is recorded."
            )
        if forward_fix:
            self.store.append_event(
                release_id,
                None,
                events.ForwardFix.kind,
                user,
                f"{user} chose a forward fix instead of a rollback: {forward_fix} "
                f"(reason: {reason})",
                data={"forward_fix": forward_fix, "reason": reason, "past": blocked},
            )
            return RollbackRequest(release_id, None, {})
        if not rollback_plan(rb, results) and not rb.rollback_validation:
            raise InvalidState(
                f"release {release_id} has nothing to roll back: no step that ran has an "
                "undo and the runbook has no rollback steps"
            )
        run = release.run + 1
        request: dict[str, Any] = {
            "reason": reason,
            "initiator": user,
            "initiator_role": role,
            "automatic": False,
            "previous_status": release.status,
            "requested_at": datetime.now(UTC).isoformat(),
        }
        if restore_procedure:
            request["restore_procedure"] = restore_procedure
            request["past"] = blocked
        # the release shows as rolling back from now on (a live view does not stop at once)
        self.store.begin_run(
            release_id,
            run,
            status="rolling_back",
            reason=f"rollback requested by {user}: {reason}",
            event=(
                events.RollbackRequested,
                user,
                f"{user}{f' ({role})' if role else ''} asked to roll back: {reason}; waiting "
                "for an on-call SRE "
                "other than them to approve",
                {"run": run, **request},
            ),
        )
        return RollbackRequest(release_id, run, request)

    def enqueue_rollback(self, request: RollbackRequest) -> None:
        """Hand a requested rollback to whichever worker takes it from the queue."""
        assert request.run is not None
        self._engine_client().enqueue(
            {
                "workflow_name": "shipcaptain.rollback",
                "queue_name": QUEUE_NAME,
                "workflow_id": release_workflow_id(request.release_id, request.run),
                "app_version": ENGINE_VERSION,
            },
            request.release_id,
            request.run,
            request.request,
        )

    # ---- control ----

    def cancel(self, release_id: str, *, user: str, reason: str) -> ReleaseRecord:
        release = self.store.get_release(release_id)
        self.authorize(user, "release.cancel", environment=release.environment, release=release)
        if release.status not in ACTIVE:
            raise InvalidState(
                f"release {release_id} is {release.status}; only an active release can be cancelled"
            )
        now = datetime.now(UTC)
        # marked before its workflow is cancelled: a step of the release that starts in
        # between (the fence of a step inside the release workflow reads this status) is
        # left; and before its gates close, which must not make it running again
        cancelled = self.store.update_release(
            release_id,
            status="cancelled",
            ended_at=now,
            reason=f"cancelled by {user}: {reason}",
            event=(
                events.ReleaseCancelled,
                user,
                f"{user} cancelled the release: {reason}",
                {"run": release.run},
            ),
        )
        self._engine_client().cancel_workflow(
            release_workflow_id(release_id, release.run), cancel_children=True
        )
        for rec in self.store.latest_step_runs(release_id).values():
            if rec.status in ("running", "waiting", "pending") and rec.run == release.run:
                self.store.upsert_step_run(
                    StepRunRecord(
                        release_id=rec.release_id,
                        step_id=rec.step_id,
                        run=rec.run,
                        attempt=rec.attempt,
                        status="cancelled",
                        started_at=rec.started_at,
                        ended_at=now,
                        summary=f"cancelled by {user}",
                        detail=rec.detail,
                        outputs=dict(rec.outputs),
                    ),
                    event=(
                        events.StepCancelled,
                        user,
                        f"{user} cancelled the release",
                        {"run": rec.run, "attempt": rec.attempt},
                    ),
                )
        for gate in self.store.list_gates(status="waiting", release_id=release_id):
            closed = (
                events.GateClosed,
                user,
                f"gate cancelled by {user}",
                {"status": "cancelled", "run": gate.run},
            )
            self.store.close_gate(release_id, gate.step_id, gate.run, "cancelled", event=closed)
        from shipcaptain.audit.anchors import anchor_release_end

        anchor_release_end(self.store, self.settings, release_id, release.run)  # its end
        return cancelled

    # ---- what runs outside a release: engine processes, migrations ----

    def start_worker(
        self,
        process: str,
        *,
        user: str,
        executor_id: str | None = None,
        rotated: bool = False,
    ) -> str | None:
        """Check that ``user`` may run an engine process (``worker.run``, in every
        environment: a worker takes any release) and that no live process runs under
        ``executor_id`` (two would run the same steps twice), and record that they started
        ``process`` (``worker``, ``server``) with the id of its audit key (``rotated``: a
        deliberate key rotation replaced the log's key with it); the role they act in."""
        import socket  # here: the commands that only read never need it (issue 27)

        from shipcaptain.permissions import EVERY_ENVIRONMENT

        role = self.authorize(user, "worker.run", environment=EVERY_ENVIRONMENT)
        if executor_id is not None:
            now = datetime.now(UTC)
            twin = self.store.claim_worker_id(
                executor_id,
                os.getpid(),
                socket.gethostname(),
                "worker",
                alive=lambda w: is_alive(w, now, self.settings.takeover_after),
            )
            if twin is not None:
                silent = (now - twin.heartbeat_at).total_seconds()
                raise InvalidState(
                    f"a process with the id {executor_id} is alive ({twin.hostname}, pid "
                    f"{twin.pid}, last heartbeat {silent:.1f}s ago): give this worker another "
                    f"--id, or stop that one first (a process that died counts as gone after "
                    f"{self.settings.takeover_after:g}s without a heartbeat)"
                )
        self.record(
            events.WorkerStarted.kind,
            user,
            f"{user} started a {process} that runs releases on {socket.gethostname()}",
            {
                "process": process,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "audit_key": self.audit_key().id,
                **({"audit_key_rotated": True} if rotated else {}),
            },
        )
        return role

    # ---- the dashboard's reads and sessions ----

    def list_events(
        self, *, release_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Audit events after ``after_seq``, oldest first (optionally of one release)."""
        return self.store.list_events(release_id=release_id, after_seq=after_seq, limit=limit)

    def last_event_seq(self) -> int:
        """The sequence number of the newest audit event (0: none yet): every change of a
        release, a gate or an incident appends one."""
        last = self.store.last_event()
        return last.seq if last else 0

    def latest_step_runs(self, release_id: str) -> dict[str, StepRunRecord]:
        """Each step's newest try in the release (by step id)."""
        return self.store.latest_step_runs(release_id)

    def team_members(self) -> list[str]:
        """The names of the people on the team now (active), in the store's order."""
        return [p.name for p in self.store.list_people() if p.active]

    def person_on_slack(self, slack_id: str) -> Person | None:
        """The active person of the team whose Slack member id is ``slack_id`` (None if
        nobody is: a press from someone the team file does not name)."""
        return next(
            (p for p in self.store.list_people() if p.active and p.slack_id == slack_id), None
        )

    def person_of(self, token: str) -> Person:
        """The person ``token`` belongs to, as the team file has them (AuthenticationFailed
        if the token is unknown, expired or revoked, or its person left the team)."""
        return identity.authenticate(self.store, token)

    def waiting_gates(self, release_id: str, run: int) -> list[str]:
        """The step ids of the gates of ``run`` that wait for a decision."""
        return [
            g.step_id
            for g in self.store.list_gates(status="waiting", release_id=release_id)
            if g.run == run
        ]

    def progress(self, release_id: str) -> ReleaseProgress:
        """The release's status, each step's newest try's and the gates of its run that
        wait for people: three small reads of one moment."""

        def read() -> ReleaseProgress:
            release = self.store.get_release(release_id)
            return ReleaseProgress(
                id=release.id,
                status=release.status,
                run=release.run,
                reason=release.reason,
                steps={k: v.status for k, v in self.store.latest_step_runs(release_id).items()},
                waiting=self.waiting_gates(release_id, release.run),
            )

        return self.store.at_one_moment(read)

    def gate_standing(self, release: ReleaseRecord, gate: GateRecord, user: str) -> GateStanding:
        """``gate`` of ``release`` as ``user`` stands before it: their parts, why they may
        not decide it, and who may (:meth:`gate_parts_for`, :meth:`why_not_decide`,
        :meth:`deciders`)."""
        parts = self.gate_parts_for(release, gate, user)
        return GateStanding(
            parts=parts,
            why_not=self.why_not_decide(user, release, gate, parts=parts),
            deciders=self.deciders(release, gate),
        )

    def answer_slack(self, headers: dict[str, str], body: bytes) -> str:
        """Check and apply a press of a gate's button in Slack (signed with the settings'
        Slack signing secret); the text shown to whoever pressed it."""
        from shipcaptain import slack_actions

        secret = self.settings.slack_signing_secret.get_secret_value()
        return slack_actions.handle(self, secret, headers, body)

    def allow_runbook(self, rule: RunbookRule, *, by: Person) -> bool:
        """Put a runbook on an environment's allow-list (admins only); False if it was."""
        from shipcaptain.team import allow_runbook

        return allow_runbook(self.store, rule, by=by)

    def remove_runbook(self, rule: RunbookRule, *, by: Person) -> None:
        """Take a runbook off an environment's allow-list (admins only)."""
        from shipcaptain.team import remove_runbook

        remove_runbook(self.store, rule, by=by)

    def comms_warnings(self, rb: Runbook, environment: str | None = None) -> list[str]:
        """What would keep the runbook's announcements from going out (no channel, no
        Slack id for a mention), with the team file of the state database when it exists
        already (this creates no database)."""
        from shipcaptain.comms import comms_warnings

        settings = self.settings
        store: Store | None = None
        if self._store is not None or settings.database_url or settings.data_dir.exists():
            try:
                store = self.store
            except ShipError:
                store = None
        return comms_warnings(rb, settings, store, environment)

    def authenticate(self, token: str) -> str:
        """The person ``token`` belongs to (AuthenticationFailed if it is unknown, expired or
        revoked, or its person left the team)."""
        return identity.authenticate_name(self.store, token)

    def start_web_session(self, token: str, *, address: str) -> tuple[str, WebSession]:
        """Sign in to the dashboard with ``token`` from ``address``: the session id (for the
        cookie, never stored) and the session as stored (recorded)."""
        return identity.start_web_session(self.store, token, address=address)

    def web_session(self, session_id: str) -> WebSession:
        """The live dashboard session of this id (AuthenticationFailed if none)."""
        return identity.web_session(self.store, session_id)

    def end_web_session(self, id_hash: str, *, actor: str, why: str) -> bool:
        """End a dashboard session (sign-out) and record it; False if it had ended already."""
        return self.store.end_web_session(id_hash, actor=actor, why=why)

    # ---- the audit log: verify, anchor, export (shipcaptain.audit) ----

    def verify_audit(self) -> AuditCheck:
        """The whole audit log checked: hashes, links, each event's MAC with the audit
        key, and the signed checkpoints of the anchor file."""
        from shipcaptain.audit.anchors import read_anchors
        from shipcaptain.audit.verify import check_log

        key = self.audit_key()
        anchors = read_anchors(self.settings.anchor_path)
        return check_log(self.store, key.public, anchors, key=key)

    def anchor_audit(self) -> Anchored:
        """Sign the log's head and anchor it (file, then Git and webhook when set)."""
        from shipcaptain.audit.anchors import anchor_log

        return anchor_log(self.store, self.audit_key(), self.settings)

    def evidence_bundle(self, release_id: str, *, user: str) -> dict[str, Any]:
        """A release's evidence bundle, made from the audit log (see shipcaptain.evidence)."""
        from shipcaptain.evidence import build_bundle

        return build_bundle(self, release_id, exported_by=user)

    # ---- rehearsal reports (shipcaptain.rehearsals: a folder, not the state database) ----

    def list_rehearsals(self, limit: int = 100) -> list[RehearsalSummary]:
        """The rehearsals kept in the settings' rehearsals directory, newest first."""
        from shipcaptain.rehearsals import list_rehearsals

        return list_rehearsals(self.settings.rehearsals_path, limit)

    def rehearsal(self, rehearsal_id: str) -> RehearsalReport:
        """A kept rehearsal's scorecard, Markdown report and evidence files."""
        from shipcaptain.rehearsals import read_rehearsal

        return read_rehearsal(self.settings.rehearsals_path, rehearsal_id)

    def rehearsal_file(self, rehearsal_id: str, name: str) -> Path:
        """An evidence file of a kept rehearsal (``name``: as :meth:`rehearsal` lists it)."""
        from shipcaptain.rehearsals import rehearsal_file

        return rehearsal_file(self.settings.rehearsals_path, rehearsal_id, name)

    def audit_public_key(self) -> str:
        """The audit key's public half (PEM): what auditors check anchors with."""
        return self.audit_key().public_pem()

    def record(self, kind: str, user: str, message: str, data: dict[str, Any]) -> None:
        """Append an event about no particular release to the audit log."""
        self.store.append_event(None, None, kind, user, message, data=data)

    def record_migrations(
        self,
        user: str,
        outcome: str,
        what: dict[str, Any],
        summary: str,
        outputs: dict[str, Any] | None,
    ) -> int:
        """Record a `migrations apply` run outside a release (``outcome``: applied, dry_run
        or failed; ``outputs`` None: it could not run); checks migrations.apply in
        ``what["environment"]``. The audit event's seq."""
        self.authorize(user, "migrations.apply", environment=str(what["environment"]))
        phase = what["phase"]
        if outputs is None:
            message, data = f"{user}: {phase} migrations failed: {summary}", dict(what)
        else:
            message = (
                f"{user} ran migrations apply --phase {phase} on {what['database']} "
                f"({what['environment']}): {summary}"
            )
            data = {**what, "ok": outcome != "failed", "outputs": outputs}
        event = self.store.append_event(
            None, None, events.migrations_ran(outcome).kind, user, message, data=data
        )
        return event.seq

    def list_incidents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[IncidentRecord]:
        """The incidents opened in ``[since, until)``, newest first."""
        return self.store.list_incidents(since=since, until=until)

    def has_open_incident(self, release_id: str) -> bool:
        """Whether the release has an incident not resolved yet."""
        return self.store.open_incident_of(release_id) is not None

    def get_incident(self, incident_id: str) -> IncidentRecord:
        return self.store.get_incident(incident_id)

    def workers(self) -> list[WorkerStatus]:
        """Every process known to the store: alive or gone, and what it runs."""
        now = datetime.now(UTC)
        limit = timedelta(seconds=self.settings.takeover_after)
        return [
            WorkerStatus(
                worker=w,
                alive=now - w.heartbeat_at < limit,
                silent_for=(now - w.heartbeat_at).total_seconds(),
                releases=[r.id for r in self.store.releases_run_by(w.executor_id)],
            )
            for w in self.store.list_workers()
        ]

    def live_workers(self) -> list[str]:
        """The ``shipcaptain worker`` processes alive now (they take queued releases)."""
        now = datetime.now(UTC)
        return sorted(
            w.executor_id
            for w in self.store.list_workers()
            if w.kind == "worker" and is_alive(w, now, self.settings.takeover_after)
        )

    def hand_to_workers(self, release_id: str, run: int, executor_id: str) -> bool:
        """Hand a run that the stopped engine process ``executor_id`` ran (``release start``
        in a terminal, its release waiting for people) to the workers: the takeover is
        claimed from it in the store (``release.taken_over``, so no worker takes it over a
        second time), the process is forgotten (the worker that runs the release next
        adopts the step workflows it left), and the run goes back on the release queue.
        False when there was nothing to hand over (another process claimed it)."""
        gone = next((w for w in self.store.list_workers() if w.executor_id == executor_id), None)
        if gone is None or self.store.get_release(release_id).executor_id != executor_id:
            return False  # not run by that process (a worker took it over meanwhile)
        event = (
            events.ReleaseTakenOver,
            "engine",
            f"{executor_id} handed the release to the workers while it waits for people; "
            "the first live worker with room runs it from here",
            {"run": run, "from": executor_id, "to": "the release queue", "handed": True},
        )
        if not self.store.claim_takeover(release_id, gone, executor_id, event=event):
            return False
        self.store.forget_worker(executor_id)
        dbos = self._engine_client()
        run_id = release_workflow_id(release_id, run)
        pending = dbos.list_workflows(
            workflow_id_prefix=release_id,
            status=["PENDING"],
            executor_id=executor_id,
            load_input=False,
            load_output=False,
        )
        for wf in pending:  # the run alone (its steps wait for adoption)
            if wf.workflow_id == run_id:
                dbos.resume_workflow(wf.workflow_id, queue_name=QUEUE_NAME)
        return True

    def executor_alive(self, executor_id: str | None) -> bool:
        """A recent heartbeat, and (on this host) a process that still exists."""
        if not executor_id:
            return False
        now = datetime.now(UTC)
        return any(
            w.executor_id == executor_id and is_alive(w, now, self.settings.takeover_after)
            for w in self.store.list_workers()
        )

    def prepare_resume(self, release_id: str, *, user: str) -> ResumeAction:
        """Decide how to resume: a failed or cancelled release gets a new run that skips
        every step already done; a release whose process died is taken over from its
        last checkpoint. A release that is running in a live process is left alone."""
        release = self.store.get_release(release_id)
        self.authorize(user, "release.resume", environment=release.environment, release=release)
        if release.status in RESUMABLE:
            run = release.run + 1
            self.store.begin_run(
                release_id,
                run,
                event=(
                    events.ReleaseResumed,
                    user,
                    f"{user} resumed the release (run {run}); finished steps are not run again",
                    {"run": run},
                ),
            )
            return ResumeAction("new_run", run, f"was {release.status}")
        if release.status in ACTIVE:
            if self.executor_alive(release.executor_id):
                raise InvalidState(
                    f"release {release_id} is {release.status} on the live "
                    f"process {release.executor_id}; nothing to resume"
                )
            if why := older_engine(self._engine_client(), release_id, release.run):
                raise InvalidState(why)
            if release.executor_id is None:
                return ResumeAction("take_over", release.run, "no process has started it yet")
            self.store.update_release(
                release_id,
                event=(
                    events.ReleaseTakenOver,
                    user,
                    f"{user} took over the release from the stopped process {release.executor_id}",
                    {"run": release.run, "from": release.executor_id},
                ),
            )
            return ResumeAction(
                "take_over", release.run, f"its process {release.executor_id} is gone"
            )
        raise InvalidState(f"release {release_id} is {release.status}; nothing to resume")

    def wait_until_finished(self, release_id: str, timeout: float | None = None) -> ReleaseRecord:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            release = self.store.get_release(release_id)
            if release.status in FINISHED:
                return release
            if deadline is not None and time.monotonic() > deadline:
                return release
            time.sleep(self.settings.poll_interval)
