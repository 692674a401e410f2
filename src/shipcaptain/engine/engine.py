"""An engine process: configures DBOS for this process and runs releases.

Only worker processes (``shipcaptain worker``, ``release start`` in the foreground,
``release resume``, ``demo``) launch an engine. CLI and web processes that only look at
or steer releases use the store and ``DBOSClient`` (see ``shipcaptain.client``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos import DBOS, DBOSClient, DBOSConfig, DBOSPortableJSONSerializer, SetWorkflowID

from shipcaptain import events
from shipcaptain.actions.registry import Registry
from shipcaptain.actions.registry import registry as default_registry
from shipcaptain.engine import dbos_private, durable, functions, rollback, workflows
from shipcaptain.engine import workflows as workflows_module
from shipcaptain.engine.ids import (
    CLOCK_PREFIX,
    CLOCK_QUEUE_NAME,
    ENGINE_VERSION,
    QUEUE_NAME,
    dbos_url,
    older_engine,
    release_and_run_of,
    release_workflow_id,
)
from shipcaptain.engine.runtime import Runtime, set_runtime
from shipcaptain.engine.system_database import (
    SYSTEM_DB_POOL_MOST,
    SystemDatabaseEngine,
)
from shipcaptain.errors import NotFound
from shipcaptain.store import Store, backend_of, open_store

if TYPE_CHECKING:  # or the light reader's values (settings_env): release start
    from shipcaptain.settings import Settings

log = logging.getLogger("shipcaptain.engine")

STATE_DB_PATIENCE = 60.0
"""Seconds an engine process waits for a state database it cannot reach before a step
fails on it (DBOS's own records wait as long as it takes)."""


#: Seconds between two looks of DBOS's notification listener on SQLite (which has no
#: LISTEN/NOTIFY): how soon a waiting gate sees a decision (an engine's shutdown does not
#: wait for the listener's sleep: see ``dbos_private.leave_polling_listener``). A worker
#: keeps the longer interval (its waiting releases are polled on every look); a CLI's
#: engine, which runs one release and hands it over at a gate, the shorter one.
LISTENER_POLL_WORKER = 0.5
LISTENER_POLL_CLI = 0.1

#: Seconds a gate's wait in a CLI's engine sleeps before it looks whether the engine is
#: stopping, where the stop cannot wake the wait (``durable.receive``: a DBOS whose waits
#: ``dbos_private`` cannot reach): about how long handing a release waiting at a gate to
#: the workers takes. Each slice records three checkpoints (the wait, its timer and the
#: checkpointed clock); a worker keeps ``durable.SLICE``.
MESSAGE_SLICE_CLI = 1.0


def dbos_config(
    settings: Settings,
    executor_id: str,
    *,
    listener_poll: float = LISTENER_POLL_WORKER,
    engine: SystemDatabaseEngine | None = None,
) -> DBOSConfig:
    """DBOS's configuration for an engine on the state database of ``settings``; on
    PostgreSQL, ``engine`` is DBOS's engine (:class:`SystemDatabaseEngine`)."""
    url = dbos_url(settings.state_url)
    config: DBOSConfig = {
        "name": "shipcaptain",
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": ENGINE_VERSION,
        "serializer": DBOSPortableJSONSerializer(),
        "log_level": "DEBUG" if settings.debug else "WARNING",
        "notification_listener_polling_interval_sec": listener_poll,
        "notification_coalesce_sec": dbos_private.NOTIFY_COALESCE,
    }
    if engine is not None:
        # DBOS keeps every connection it ever opened (20 at most): a launch's threads open
        # about six at once, and an idle worker held them all. Its engine keeps two, opens
        # up to the same 20 under load, and lets as many of them poll as before (half of 20)
        config["system_database_engine"] = engine.engine
        config["sys_db_polling_concurrency"] = SYSTEM_DB_POOL_MOST // 2
    return config


def _keyed(store: Store, settings: Settings) -> Store:
    """``store`` appending events keyed with the audit key of ``settings``."""
    from shipcaptain.audit.keys import audit_key_of

    store.use_audit_key(lambda: audit_key_of(settings.audit_key_path))
    return store


class Engine:
    """One engine per process (DBOS is process-global)."""

    def __init__(
        self,
        settings: Settings,
        *,
        executor_id: str,
        store: Store | None = None,
        registry: Registry | None = None,
        workdir: Path | None = None,
        secrets: list[str] | None = None,
        takes_over: bool = False,
        takes_queued: bool = True,
    ) -> None:
        """``takes_over``: this process (a worker) takes over the releases of workers that
        are gone (see ``take_over_gone_workers``). ``takes_queued``: it takes queued
        releases, rollbacks and SLA clocks; a CLI that runs one release itself does not
        (what it took would die with it when its own release ends)."""
        self.settings = settings
        self.takes_over = takes_over
        self.takes_queued = takes_queued
        self.executor_id = executor_id
        self.store = store or _keyed(open_store(settings.state_url), settings)
        self._own_store = store is None
        self.registry = registry or default_registry
        self.workdir = workdir or Path.cwd()
        self.secrets = secrets or []
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._unqueue: Callable[[], None] | None = None
        self._watcher: threading.Thread | None = None
        self._launched = False
        #: heartbeats and takeovers have database connections of their own: a worker busy
        #: with many releases queues for the shared pools, and a late heartbeat would make a
        #: live worker look gone, a slow look a takeover late
        self._control: Store | None = None
        self._control_dbos: DBOSClient | None = None
        #: DBOS's engine on PostgreSQL (``SystemDatabaseEngine``), disposed after DBOS
        self._system_db: SystemDatabaseEngine | None = None
        #: since when (monotonic) this process's heartbeats have got through without a
        #: gap; None while they fail. Others' silence counts only after a whole takeover
        #: window of our own: after an outage of the state database, every process was
        #: silent, and none may take over from the others because of it.
        self._beating_since: float | None = None
        #: releases of gone processes left to people: an older engine version runs them
        self._refused: set[str] = set()

    def launch(self) -> None:
        if settings_dir := (self.settings.data_dir if not self.settings.database_url else None):
            settings_dir.mkdir(parents=True, exist_ok=True)
        self.store.migrate()
        self.store.reconnect_for = STATE_DB_PATIENCE
        self.runtime = Runtime(
            store=self.store,
            registry=self.registry,
            executor_id=self.executor_id,
            workdir=self.workdir,
            secrets=self.secrets,
            settings=self.settings,
            # a CLI's engine leaves a gate's wait soon when it hands the release over
            message_slice=durable.SLICE if self.takes_queued else MESSAGE_SLICE_CLI,
        )
        set_runtime(self.runtime)
        dbos_private.check()  # before anything runs: a DBOS without them fails here, clearly
        self._unqueue = self.store.queue_all_transactions()
        poll = LISTENER_POLL_WORKER if self.takes_queued else LISTENER_POLL_CLI
        if backend_of(self.settings.state_url) == "postgresql":
            self._system_db = SystemDatabaseEngine(dbos_url(self.settings.state_url))
        DBOS(
            config=dbos_config(
                self.settings, self.executor_id, listener_poll=poll, engine=self._system_db
            )
        )
        if not self.takes_queued:
            DBOS.listen_queues([])
        DBOS.launch()
        if self.takes_queued:
            # the queue's settings are shared: every worker takes up to this many releases
            DBOS.register_queue(QUEUE_NAME, worker_concurrency=self.settings.worker_concurrency)
            DBOS.register_queue(CLOCK_QUEUE_NAME)
        log.info("engine %s launched; %s", self.executor_id, functions.summary())
        self._launched = True
        self._control = _keyed(open_store(self.settings.state_url), self.settings)
        if self.takes_over:
            self._control_dbos = DBOSClient(
                system_database_url=dbos_url(self.settings.state_url),
                serializer=DBOSPortableJSONSerializer(),
                system_database_pool_size=2,
            )
            dbos_private.check(self._control_dbos)
        if self._control_dbos is not None:
            self.runtime.adopt = self.adopt_children
            self._say_older_runs()
        self._beat()
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="heartbeat", daemon=True
        )
        self._heartbeat.start()
        if self.takes_over:
            self._watcher = threading.Thread(
                target=self._takeover_loop, name="takeover", daemon=True
            )
            self._watcher.start()

    def _say_older_runs(self) -> None:
        """A worker restarted on a new engine version: DBOS leaves the runs the old one left
        pending here alone (it runs a workflow only in a process of its version); say so,
        and what to do, instead of letting them look as if they ran."""
        pending = self._workflows.list_workflows(
            status=["PENDING", "ENQUEUED"],
            executor_id=self.executor_id,
            load_input=False,
            load_output=False,
        )
        for wf in pending:
            if "/" in wf.workflow_id or wf.app_version in (None, ENGINE_VERSION):
                continue
            release_id, run = release_and_run_of(wf.workflow_id)
            if why := older_engine(self._workflows, release_id, run):
                self._refused.add(release_id)
                log.warning("release %s is not run here: %s", release_id, why)

    @property
    def control(self) -> Store:
        """The store on the connections of heartbeats and takeovers."""
        return self._control or self.store

    def _beat(self) -> None:
        # a worker takes over the releases of gone processes; a CLI's engine runs its own
        kind = "worker" if self.takes_over else "engine"
        try:
            self.control.heartbeat(self.executor_id, os.getpid(), socket.gethostname(), kind)
        except Exception:
            self._beating_since = None
            raise
        if self._beating_since is None:
            self._beating_since = time.monotonic()

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self._beat()
            except Exception as exc:  # a missed heartbeat must not kill the worker
                log.warning("heartbeat failed: %s", exc)

    def _takeover_loop(self) -> None:
        # apart from the heartbeat, so that a slow look at the others never delays it
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self.take_over_gone_workers()
            except Exception:  # the next look tries again
                log.warning("taking over from a gone worker failed", exc_info=True)

    def take_over_gone_workers(self) -> list[str]:
        """Take over the unfinished releases of every worker that has not said it is alive
        for ``takeover_after`` seconds, and the incident clocks of any gone process. Each
        takeover is claimed in the store first (per release and per incarnation of the gone
        process), so when several live processes notice at once, only one takes it over.
        Returns the release ids."""
        now = datetime.now(UTC)
        limit = timedelta(seconds=self.settings.takeover_after)
        taken: list[str] = []
        if self._beating_since is None or (
            time.monotonic() - self._beating_since < self.settings.takeover_after
        ):
            return taken  # not connected for a whole window ourselves: nobody is judged
        for gone in self.control.list_workers():
            if gone.executor_id == self.executor_id or now - gone.heartbeat_at < limit:
                continue
            # a release a terminal ran (an engine, not a worker) waits for a person's
            # `release resume` (recover-a-release.md); its incident clocks do not wait
            releases = self._releases_of(gone.executor_id) if gone.kind == "worker" else []
            for release_id, run in releases:
                if why := older_engine(self._workflows, release_id, run):
                    if release_id not in self._refused:  # said once, not at every look
                        self._refused.add(release_id)
                        log.warning("not taking over release %s: %s", release_id, why)
                    continue
                silent = (now - gone.heartbeat_at).total_seconds()
                event = (
                    events.ReleaseTakenOver,
                    "engine",
                    f"{self.executor_id} took over the release: its process {gone.executor_id} "
                    f"has not said it is alive for {silent:.0f}s",
                    {"run": run, "from": gone.executor_id, "to": self.executor_id},
                )
                if not self.control.claim_takeover(release_id, gone, self.executor_id, event=event):
                    continue  # taken over already, by this process or another
                log.warning("took over release %s from %s", release_id, gone.executor_id)
                self.take_over(
                    release_id,
                    run,
                    from_executor=gone.executor_id,
                    workflows=self._workflows,
                    queued=True,
                )
                taken.append(release_id)
            self._requeue_clocks_of(gone.executor_id)
        return taken

    def _requeue_clocks_of(self, executor_id: str) -> list[str]:
        """Put the SLA clocks a gone process was running back on their queue, for the next
        free worker. DBOS's recovery hand-over only moves a workflow that is still pending
        on the gone process, so when several live processes notice at once, one clock
        still runs once."""
        moved = []
        for wf in self._workflows.list_workflows(
            workflow_id_prefix=CLOCK_PREFIX,
            status=["PENDING"],
            executor_id=executor_id,
            load_input=False,
            load_output=False,
        ):
            # DBOS's own recovery step (what a restarted process does for itself)
            if dbos_private.reenqueue_for_recovery(
                self._workflows, wf.workflow_id, executor_id, CLOCK_QUEUE_NAME
            ):
                log.warning("requeued the SLA clock %s of %s", wf.workflow_id, executor_id)
                moved.append(wf.workflow_id)
        return moved

    def _releases_of(self, executor_id: str) -> list[tuple[str, int]]:
        """The unfinished releases (id, run) a process was running: those it recorded as
        its own, and every release with a workflow the engine's own records show it
        running (taken from a queue, or resumed there after an earlier takeover)."""
        found = {r.id: r.run for r in self.control.releases_run_by(executor_id)}
        for wf in self._workflows.list_workflows(
            status=["PENDING"], executor_id=executor_id, load_input=False, load_output=False
        ):
            release_id, run = release_and_run_of(wf.workflow_id)
            if release_id not in found:
                try:
                    release = self.control.get_release(release_id)
                except NotFound:
                    continue
                found[release_id] = max(run, release.run)
        return list(found.items())

    def adopt_children(self, run_workflow_id: str) -> list[str]:
        """Make runnable again the step workflows of a run (``<run>/...``) still pending on
        a process that is gone: a run taken over from it goes back on the release queue
        alone, and the process that takes it from there adopts its steps when it starts
        it, so they run within its share of releases. Through the takeover's own
        DBOSClient: called inside the run's workflow, DBOS's own calls would be recorded
        as steps of it. Returns the workflow ids."""
        if self._control_dbos is None:
            return []
        others = [
            wf
            for wf in self._control_dbos.list_workflows(
                workflow_id_prefix=run_workflow_id + "/",
                status=["PENDING"],
                load_input=False,
                load_output=False,
            )
            if wf.executor_id != self.executor_id
        ]
        if not others:  # nearly every run: who is alive need not be read
            return []
        now = datetime.now(UTC)
        alive = {
            w.executor_id
            for w in self.control.list_workers()
            if now - w.heartbeat_at < timedelta(seconds=self.settings.takeover_after)
        }
        orphans = [wf.workflow_id for wf in others if wf.executor_id not in alive]
        for wid in orphans:
            self._control_dbos.resume_workflow(wid)
        if orphans:
            log.warning("adopted %d step workflows of %s", len(orphans), run_workflow_id)
        return orphans

    def start(self, release_id: str, run: int) -> Any:
        """Start (or attach to) the workflow of ``run`` of a release in this process."""
        with SetWorkflowID(release_workflow_id(release_id, run)):
            return DBOS.start_workflow(workflows.release_workflow, release_id, run)

    def start_rollback(self, release_id: str, run: int, request: dict[str, Any]) -> Any:
        """Start (or attach to) the rollback run ``run`` of a release in this process."""
        with SetWorkflowID(release_workflow_id(release_id, run)):
            return DBOS.start_workflow(rollback.rollback_workflow, release_id, run, request)

    @property
    def _workflows(self) -> Any:
        """Where takeovers list and resume workflows: the takeover's own DBOSClient."""
        return self._control_dbos or DBOS

    def take_over(
        self,
        release_id: str,
        run: int,
        *,
        from_executor: str | None = None,
        workflows: Any = DBOS,
        queued: bool = False,
    ) -> list[str]:
        """Make the unfinished workflows of a release runnable again (used when the process
        that ran them is gone; ``from_executor``: only that process's); start the run if no
        process ever did. Returns the workflow ids. ``workflows``: DBOS, or a DBOSClient.

        ``queued`` (a worker taking over from a gone one): the run itself goes back on the
        release queue, so it counts against the ``--concurrency`` of the worker that takes
        it from there like any queued release, and that worker adopts the run's steps when
        it starts it (``adopt_children``). Without it (``release resume`` in a terminal),
        every workflow of the run is resumed at once in DBOS's own queue."""
        run_id = release_workflow_id(release_id, run)
        if not workflows.list_workflows(workflow_ids=[run_id], load_input=False, load_output=False):
            if queued:
                with SetWorkflowID(run_id):
                    DBOS.enqueue_workflow(
                        QUEUE_NAME, workflows_module.release_workflow, release_id, run
                    )
            else:
                self.start(release_id, run)
            return [run_id]
        pending = workflows.list_workflows(
            workflow_id_prefix=release_id,
            status=["PENDING"],
            executor_id=from_executor,
            load_input=False,
            load_output=False,
        )
        # Not the workflows this process's own id left: DBOS's launch handed those back to
        # its queue (its recovery of a restarted process, which `release resume` in a new
        # terminal is: the same `cli-RELEASE` id), and this process may be running them
        # already. Resuming one again started a second execution beside the first; the one
        # that lost it waited for ever for an outcome (the process never exited).
        ids = [
            w.workflow_id
            for w in pending
            if w.executor_id != self.executor_id
            and (
                w.workflow_id == release_id
                or w.workflow_id.startswith((release_id + "/", release_id + "."))
            )
        ]
        if queued:  # the runs alone (a rollback's too); their steps wait for adoption
            ids = [wid for wid in ids if "/" not in wid]
        for wid in ids:
            workflows.resume_workflow(wid, queue_name=QUEUE_NAME if queued else None)
        return ids

    def shutdown(self) -> None:
        """Stop: waiting releases leave (woken, or at their next slice; they stay PENDING
        and resume in the next process), then DBOS shuts down."""
        self._stop.set()
        if self._launched:
            self.runtime.stop()
            # workflow threads cut off by the shutdown (cancelled or stopping releases) log
            # DBOS errors that say nothing about the release: they resume in the next process
            logging.getLogger("dbos").setLevel(logging.CRITICAL)
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self._launched:
            # let waiting workflows reach their next slice and leave (they stay PENDING)
            # before the system database goes away under them
            wait = _wait_left(self.runtime.stop)
            # not the SQLite listener's sleep (up to its polling interval: ~50 ms of every
            # CLI's engine shutdown, ~250 ms of a worker's) nor the PostgreSQL notifier's
            # (up to a second): they end on their own
            dbos_private.leave_polling_listener()
            DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=wait)
            self._launched = False
        if self._system_db is not None:
            self._system_db.dispose()
            self._system_db = None
        set_runtime(None)
        if self._unqueue is not None:
            self._unqueue()
            self._unqueue = None
        if self._control_dbos is not None:
            self._control_dbos.destroy()
            self._control_dbos = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._own_store:
            self.store.close()

    def __enter__(self) -> Engine:
        self.launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _wait_left(wake: Callable[[], None], poll: float = 0.005) -> int:
    """Wait (polling briefly) for this process's workflows to leave; the seconds DBOS should
    still wait for the ones left, 0 when none is. DBOS's own wait sleeps a whole second
    before its first look, which made every engine shutdown take over a second. A release
    that has just returned is usually gone within a few milliseconds (its workflow records
    its output): a look costs microseconds, so the looks are close together.

    Each look ``wake``s the waits again (``Runtime.stop``): a gate that had looked whether
    the process is stopping just before the stop began its wait (an hour in DBOS.recv)
    after the stop's wake-up, and its thread held the process after the engine was gone."""
    deadline = time.monotonic() + durable.SLICE + 2
    if dbos_private.active_workflows() is None:  # DBOS does not tell: let it wait its own way
        return int(durable.SLICE) + 2
    while dbos_private.active_workflows():
        if time.monotonic() >= deadline:
            return 1
        wake()
        time.sleep(poll)
    return 0
