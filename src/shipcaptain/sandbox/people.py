"""The demo's people: they answer every gate as the runbook's roles would, through the
same client calls a person makes from the CLI."""

from __future__ import annotations

import threading
from collections.abc import Callable

import click

from shipcaptain.client import Client
from shipcaptain.errors import ShipError, StoreError
from shipcaptain.identity import authenticate
from shipcaptain.permissions import SEPARATED_KINDS
from shipcaptain.runbook.model import Runbook
from shipcaptain.store import GateRecord


def pick_person(rb: Runbook, gate: GateRecord, started_by: str) -> str | None:
    """Someone allowed to decide ``gate``: a listed person, else a member of a listed role
    (not the release's starter where separation of duties applies)."""
    candidates = list(gate.people)
    for role in gate.roles:
        candidates += rb.roles[role].members if role in rb.roles else []
    if gate.kind in SEPARATED_KINDS:
        candidates = [c for c in candidates if c != started_by]
    return candidates[0] if candidates else None


def pick_people(rb: Runbook, gate: GateRecord, started_by: str) -> list[str]:
    """Who answers ``gate``: of a gate in parts (a changelog sign-off), someone for each
    part (its person, else a member of its role); else one person (:func:`pick_person`)."""
    parts = (gate.evidence or {}).get("parts") or []
    if not parts:
        person = pick_person(rb, gate, started_by)
        return [person] if person else []
    chosen: list[str] = []
    for part in parts:
        members = [m for r in part["roles"] if r in rb.roles for m in rb.roles[r].members]
        for person in [*part["people"], *members][:1]:
            if person not in chosen:
                chosen.append(person)
    return chosen


class DemoPeople(threading.Thread):
    def __init__(
        self,
        client: Client,
        release_id: str,
        rb: Runbook,
        started_by: str,
        tokens: dict[str, str],
        *,
        leave_to: str | None = None,
        decide: Callable[[str, GateRecord], None] | None = None,
    ) -> None:
        """``leave_to``: a person whose gates are left to a human (``demo --dashboard``);
        ``decide(person, gate)``: how a person approves (default: the client, here; ``demo
        --team``: the CLI with --server)."""
        super().__init__(name="demo-people", daemon=True)
        self.tokens = tokens
        self.leave_to = leave_to
        self.client = client
        self.release_id = release_id
        self.rb = rb
        self.started_by = started_by
        self.decide = decide
        self.stop = threading.Event()
        self.answered: set[tuple[str, int, str]] = set()

    def run(self) -> None:
        while not self.stop.wait(0.3):
            try:
                self.look()
            except StoreError as exc:  # the state database away: they look again
                click.echo(f"  [demo] the people cannot see the gates now: {exc}")

    def look(self) -> None:
        for gate in self.client.store.list_gates(status="waiting", release_id=self.release_id):
            for person in pick_people(self.rb, gate, self.started_by):
                key = (gate.step_id, gate.run, person)
                if key in self.answered or person == self.leave_to:
                    continue
                self.answer(gate, person)
                self.answered.add(key)

    def answer(self, gate: GateRecord, person: str) -> None:
        """``person`` decides ``gate``; a :class:`StoreError` (the state database away)
        goes to the caller, which tries again on its next look."""
        verb = "confirms" if gate.kind == "checklist" else "approves"
        release = self.client.store.get_release(self.release_id)
        parts = self.client.gate_parts_for(release, gate, person)
        what = "; ".join(p["title"] for p in parts) if parts else gate.prompt
        click.echo(click.style(f"  [demo] {person} {verb} {gate.step_id}: {what}", fg="yellow"))
        if self.decide is not None:
            self.decide(person, gate)
            return
        try:
            # each person shows their own token, as from the CLI
            me = authenticate(self.client.store, self.tokens[person]).name
            self.client.decide(
                self.release_id,
                gate.step_id,
                user=me,
                decision="approve",
                comment="checked in the sandbox",
                wait=0,
            )
        except StoreError:
            raise
        except ShipError as exc:
            click.echo(f"  [demo] {person} could not decide {gate.step_id}: {exc}")


class TeamPeople(DemoPeople):
    """The sandbox's people as members of the team file's roles (``rehearse``): each gate
    is answered by someone the team file lets decide it (the runbook's own pick first, as
    in the demo; else the first of the team who may, or each of them for a gate in parts).
    A gate nobody may decide is handed to ``nobody(gate, why)`` once, instead of waiting
    for its deadline."""

    def __init__(
        self,
        client: Client,
        release_id: str,
        rb: Runbook,
        started_by: str,
        tokens: dict[str, str],
        *,
        nobody: Callable[[GateRecord, str], None],
    ) -> None:
        super().__init__(client, release_id, rb, started_by, tokens)
        self.nobody = nobody
        self.reported: set[tuple[str, int]] = set()

    def choose(self, gate: GateRecord, may: list[str]) -> list[str]:
        picked = [p for p in pick_people(self.rb, gate, self.started_by) if p in may]
        if picked:
            return picked
        if (gate.evidence or {}).get("parts"):
            return may
        return may[:1]

    def look(self) -> None:
        """One look at the gates (the loop of :meth:`DemoPeople.run` rides out a state
        database that is away, as in the ``state_db_unreachable`` fault)."""
        gates = self.client.store.list_gates(status="waiting", release_id=self.release_id)
        if not gates:
            return
        release = self.client.store.get_release(self.release_id)
        for gate in gates:
            may = [p for p in self.client.deciders(release, gate) if p in self.tokens]
            chosen = self.choose(gate, may)
            done = any(k[:2] == (gate.step_id, gate.run) for k in self.answered)
            if not chosen and not done and (gate.step_id, gate.run) not in self.reported:
                self.reported.add((gate.step_id, gate.run))
                roles = ", ".join(gate.roles) or "no role"
                people = ", ".join(gate.people)
                self.nobody(gate, f"roles {roles}" + (f", people {people}" if people else ""))
            for person in chosen:
                key = (gate.step_id, gate.run, person)
                if key in self.answered:
                    continue
                self.answer(gate, person)
                self.answered.add(key)
