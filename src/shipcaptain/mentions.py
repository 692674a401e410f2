"""Who a message mentions: the people of a role in the release's environment, as Slack
mentions (``<@U024BE7LH>``) when the team file gives their Slack id, else by name.

Comms templates see ``roles.<role>.mentions`` (and ``release.captain_mention``): one
entry per person, in the form Slack turns into a notification. A person without a Slack
id is named in plain text (``validate`` and ``release start`` warn about it). The generic
webhook gets the names back (``@fola``) with the ids beside them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from shipcaptain.permissions import person_named, policy_of, roles_of
from shipcaptain.records import Person
from shipcaptain.runbook.model import Runbook
from shipcaptain.store import Store

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


def role_people(store: Store, rb: Runbook, environment: str, role: str) -> list[Person]:
    """The active people who hold ``role`` in ``environment``: the team's, then the
    runbook's ``members`` (as the permission check sees them)."""
    policy = policy_of(store)
    people = {p.name: p for p in policy.people if p.active}
    for name in rb.roles[role].members if role in rb.roles else []:
        people.setdefault(name, policy.person(name))
    return [p for p in people.values() if p.active and role in roles_of(p, rb, environment, policy)]


def mention(person: Person) -> str:
    return f"<@{person.slack_id}>" if person.slack_id else person.name


def role_mentions(store: Store, rb: Runbook, environment: str) -> dict[str, list[str]]:
    """Every runbook role's people as mentions."""
    return {
        role: [mention(p) for p in role_people(store, rb, environment, role)] for role in rb.roles
    }


def person_mention(store: Store, name: str) -> str:
    return mention(person_named(store, name))


def ids_to_names(store: Store, text: str) -> dict[str, str]:
    """The Slack ids mentioned in ``text`` with the person each belongs to."""
    ids = set(_MENTION.findall(text))
    if not ids:
        return {}
    return {p.slack_id: p.name for p in store.list_people() if p.slack_id in ids}


def plain(text: str, names: Mapping[str, str]) -> str:
    """``text`` with each Slack mention written as ``@name`` (for a generic webhook)."""
    return _MENTION.sub(lambda m: f"@{names.get(m[1], m[1])}", text)


def unmentionable(store: Store, rb: Runbook, environment: str) -> list[str]:
    """People the comms templates mention (by role) who have no Slack id."""
    used = [
        role
        for role in rb.roles
        if any(f"roles.{role}.mentions" in t for t in rb.comms.templates.values())
    ]
    missing: list[str] = []
    for role in used:
        for person in role_people(store, rb, environment, role):
            if not person.slack_id and person.name not in missing:
                missing.append(person.name)
    return missing
