"""The action registry: built-in and third-party actions register the same way, through
the ``shipcaptain.actions`` entry-point group (or ``register`` for code that embeds us).

The registry itself is the runbook model's action catalogue
(:mod:`shipcaptain.runbook.catalogue`), which imports no action; here it is typed with the
actions' own base class for the engine, the planner and the client.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from shipcaptain.actions.base import _ActionBase
from shipcaptain.runbook import catalogue
from shipcaptain.runbook.catalogue import GROUP, UnknownAction

__all__ = ["GROUP", "Registry", "UnknownAction", "registry"]

#: A registry of actions (the runbook catalogue's, with the actions' own type).
Registry: TypeAlias = catalogue.Registry[_ActionBase[Any]]

#: The one registry, shared with the runbook model (``catalogue.registry``).
registry: Registry = catalogue.registry
