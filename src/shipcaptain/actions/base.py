"""The action interface.

An action is what a step does. It declares a parameters model (checked when the runbook
is validated), says what it would do (``describe``, used by ``shipcaptain plan``),
whether it is idempotent, how to tell that its work is already done, and runs.

Two kinds exist, and the engine treats them through the interface only:

* ``Action``: ``run`` is one unit of work. The engine runs it as a checkpointed step:
  once it returned, a crash or a resume never runs it again. A crash *while* it runs
  makes it run again, so an action that changes the world should be idempotent or
  implement ``already_done``.
* ``DurableAction``: ``run_durable`` is interpreted by the engine and may only use the
  durable primitives of its ``DurableContext`` (sleep, waiting for people's decisions).
  Gates (approval, checklist) and ``wait`` are durable actions.

Actions never import the engine or the store.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any

OutcomeStatus = Literal["succeeded", "failed"]


class Outcome(BaseModel):
    """What one try of a step produced. Stored (summary, outputs) and shown to people."""

    model_config = ConfigDict(frozen=True)

    status: OutcomeStatus
    summary: str = Field(default="", description="One line for the timeline.")
    detail: str = Field(default="", description="Longer output (already redacted, truncated).")
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    already_done: bool = Field(
        default=False, description="Nothing was done: the work was found done."
    )
    retryable: bool = Field(default=True, description="A failure that another try may fix.")

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def success(cls, summary: str = "", **kw: Any) -> Outcome:
        return cls(status="succeeded", summary=summary, **kw)

    @classmethod
    def failure(cls, summary: str, **kw: Any) -> Outcome:
        return cls(status="failed", summary=summary, **kw)


class ActionParams(BaseModel):
    """Base of every action's parameters model: frozen and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=ActionParams)


class ActionOutputs(BaseModel):
    """Base of an action's outputs model: the names a later step reads as
    ``{{ steps.<id>.<name> }}``, each with its type and description. ``validate`` and
    ``plan`` refuse a reference to a name the model does not have. A model whose
    ``model_config`` says ``extra="allow"`` also has outputs named in the runbook itself
    (a shell command's ``::output name=value`` lines): any other name is accepted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.model_fields)

    @classmethod
    def open_ended(cls) -> bool:
        return cls.model_config.get("extra") == "allow"


@dataclass
class PlanContext:
    """What ``describe`` may look at: the release's values, nothing live."""

    release_values: Mapping[str, Any] = field(default_factory=dict)
    workdir: Path = field(default_factory=Path.cwd)


@dataclass
class StepContext:
    """What a running ``Action`` gets from the engine."""

    release_id: str
    step_id: str
    attempt: int
    timeout: float
    workdir: Path
    release_values: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    progress: Callable[[str], None] = field(default=lambda _msg: None)
    #: when this step first started in this release (epoch seconds), if this try is not
    #: its first start: an earlier try, an earlier run (a resume), or this same try
    #: interrupted by a crash. None: the step never started before. Read on demand, for an
    #: action that looks in the world for work it may have started then.
    first_started: Callable[[], float | None] = field(default=lambda: None)
    started_by: str = ""  # the person who started the release (or runs the command)
    #: what ``already_done`` worked out that ``run`` needs too, kept for this try only (the
    #: engine calls both with the same context, ``run`` right after): an action's own keys
    memo: dict[str, Any] = field(default_factory=dict)

    def getenv(self, name: str) -> str | None:
        """An environment variable as the step sees it: the release's environment, then the
        worker's."""
        return self.env.get(name) or os.environ.get(name)

    def redact(self, text: str) -> str:
        """Replace every known secret value in ``text`` by ``***``."""
        for secret in sorted((s for s in self.secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class GateRequest:
    """What a gate asks of people. The engine records it, waits and checks each decision."""

    kind: Literal["approval", "checklist", "rollback"]
    prompt: str
    roles: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    quorum: int = 1
    deadline_seconds: float = 3600.0
    evidence: dict[str, Any] = field(default_factory=dict)
    """What the deciders are shown, kept with each decision. A gate in parts puts them in
    ``evidence["parts"]``, a list of :class:`GatePart` dicts (see :meth:`GatePart.as_evidence`):
    each part needs one approval from its own ``people`` or ``roles``, the gate is approved
    once every part has one, and each person's decision keeps only the parts that were
    theirs (``quorum`` is then the number of parts, for display)."""


@dataclass(frozen=True)
class GatePart:
    """One part of a gate in parts: what one person (or one of a role) must confirm."""

    title: str
    text: str
    people: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

    def as_evidence(self) -> dict[str, Any]:
        return {"title": self.title, "people": self.people, "roles": self.roles, "text": self.text}


@dataclass(frozen=True)
class TeamMember:
    """Someone who holds a role in the release's environment, and the surfaces they own."""

    name: str
    surfaces: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """One person's answer to a gate."""

    decision: Literal["approve", "reject"]
    user: str
    role: str | None
    comment: str
    at: str  # ISO 8601 UTC


@dataclass(frozen=True)
class GateResult:
    approved: bool
    timed_out: bool
    decisions: list[Decision]


class DurableContext(ABC):
    """Durable primitives for ``DurableAction``: everything here survives a crash."""

    release_id: str
    step_id: str
    release_values: Mapping[str, Any]
    workdir: Path  # the release's working directory (relative paths start here)

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Sleep durably: after a restart only the rest of the time is waited."""

    @abstractmethod
    def await_gate(self, request: GateRequest) -> GateResult:
        """Record the gate, wait for enough decisions (or a rejection, or the deadline)."""

    @abstractmethod
    def progress(self, message: str) -> None:
        """Show a line in the live view and the timeline."""

    def announce(self, template: str) -> list[dict[str, Any]]:
        """Send the runbook's comms template ``template`` to the release's channels, once
        (a replay returns the recorded outcome); each channel's ``{channel, status, error}``.
        The default: nowhere to send it."""
        return []

    def members(self, role: str) -> list[TeamMember]:
        """The people who hold ``role`` in the release's environment (the team's, then the
        runbook's ``members``), with the surfaces each owns in the team file. Read it inside
        :meth:`record` so a replay sees the team as it was. The default: nobody."""
        return []

    def record(self, name: str, measure: Callable[[], JsonValue]) -> JsonValue:
        """Run ``measure`` (a look at the world: a query, a request) once and keep its
        JSON result: after a restart the kept result is returned instead of measuring again,
        so the action takes the same path. The default simply measures."""
        return measure()


class _ActionBase(ABC, Generic[P]):
    #: name used in runbooks (``action: shell``)
    name: ClassVar[str]
    #: one line shown by ``shipcaptain actions``
    summary: ClassVar[str] = ""
    #: the parameters model
    Params: ClassVar[type[ActionParams]]
    #: the outputs model (what ``steps.<id>.<name>`` may read); None: not declared, so
    #: references to this action's outputs are not checked before the release
    Outputs: ClassVar[type[ActionOutputs] | None] = None
    #: running it twice has the same effect as once
    idempotent: ClassVar[bool] = False
    #: its ``run`` looks in the world for work an earlier try started
    #: (``StepContext.first_started``, e.g. a workflow run it dispatched): the engine then
    #: writes the try's start durably (synced to disk) before ``run``, so that not even a
    #: power cut of the state database's host loses the start it would look from
    finds_earlier_tries: ClassVar[bool] = False
    #: the step waits for a person's decision (a gate); shown by ``plan`` and the UI
    waits_for_people: ClassVar[bool] = False
    #: the step changes something outside shipcaptain (a rollback has to undo it); checks,
    #: gates and reads say False
    changes_world: ClassVar[bool] = True
    #: parameters that are bash command lines: a template value in them is quoted for
    #: where it lands (``| raw`` opts out per use); see ``shipcaptain.runbook.shell_quoting``
    shell_params: ClassVar[tuple[str, ...]] = ()

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        return self.Params.model_validate(dict(raw))  # type: ignore[return-value]

    @abstractmethod
    def describe(self, params: P, ctx: PlanContext) -> str:
        """What this step would do, in one or two lines, without doing it."""

    def cannot_fail_a_guard(self, params: dict[str, Any]) -> str | None:
        """Why these parameters make a check that always passes, when the runbook uses
        it as a guard (a guard must be able to stop a step); None when they do not."""
        return None


class Action(_ActionBase[P]):
    """A unit of work, run once as a checkpointed step."""

    def already_done(self, params: P, ctx: StepContext) -> Outcome | None:
        """Return an Outcome (with ``already_done=True``) if the work is already done.

        Called before each try; the default is "cannot tell"."""
        return None

    @abstractmethod
    def run(self, params: P, ctx: StepContext) -> Outcome:
        """Do the work. Honour ``ctx.timeout``. Return a failed Outcome rather than
        raising for an expected failure; raise ActionError for anything else."""


class DurableAction(_ActionBase[P]):
    """An action interpreted by the engine with durable primitives (gates, waits)."""

    idempotent: ClassVar[bool] = True
    #: True when the action uses only ``ctx.sleep`` and ``ctx.progress`` (a ``wait``): the
    #: engine may then run it inside the release workflow, its sleeps timed from the
    #: recorded start of its try, instead of as a workflow of its own
    sleeps_only: ClassVar[bool] = False

    @abstractmethod
    def run_durable(self, params: P, ctx: DurableContext) -> Outcome:
        """Use only ``ctx``'s primitives; everything else must be deterministic."""
