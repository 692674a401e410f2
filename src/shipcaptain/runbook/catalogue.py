"""The action catalogue: how the runbook model finds the action types its steps name.

The runbook model is the bottom floor: it imports no action. It defines what it needs of
an action type (:class:`ActionType`: its ``Params`` and ``Outputs`` models, the parameters
that reach a shell, whether it can fail a guard) and of a catalogue of them
(:class:`ActionCatalogue`). Action types register into the catalogue through the
``shipcaptain.actions`` entry-point group (:data:`GROUP`): the built-in ones of
``shipcaptain.actions`` and third-party plug-ins alike, or with :meth:`Registry.register`
for code that embeds shipcaptain. ``shipcaptain.actions.registry`` is the same registry,
typed with the actions' own base class.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from threading import Lock
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel

from shipcaptain.errors import ShipError

#: The entry-point group action types register in.
GROUP = "shipcaptain.actions"


class DeclaredOutputs(Protocol):
    """What the runbook's checks read of an action's ``Outputs`` model."""

    @classmethod
    def names(cls) -> list[str]: ...

    @classmethod
    def open_ended(cls) -> bool: ...


class ActionType(Protocol):
    """What the runbook model reads of an action type (an instance of its class)."""

    @property
    def Params(self) -> type[BaseModel]: ...

    @property
    def Outputs(self) -> type[DeclaredOutputs] | None: ...

    @property
    def shell_params(self) -> tuple[str, ...]: ...

    def cannot_fail_a_guard(self, params: dict[str, Any]) -> str | None: ...


class ActionCatalogue(Protocol):
    """The action types known by name."""

    def names(self) -> list[str]: ...

    def get(self, name: str) -> ActionType: ...


class UnknownAction(ShipError, LookupError):
    code = "SC102"
    exit_code = 2


A = TypeVar("A")


class Registry(Generic[A]):
    """The action types of the ``shipcaptain.actions`` entry points, and any registered in
    code; each type has one instance. The entry points are found (by name, nothing
    imported) when the registry is first asked; each plug-in is imported only when its
    action is first used, so a runbook of shell steps does not import the HTTP, Kubernetes
    or GitHub clients, and a broken plug-in stops only what uses it."""

    def __init__(self, group: str = GROUP, what: str = "action") -> None:
        """``group``: the entry-point group the plug-ins register in; ``what`` they are
        (in messages)."""
        self.group = group
        self.what = what
        self._classes: dict[str, type[A]] = {}
        self._instances: dict[str, A] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        self._loaded = False
        self._lock = Lock()

    def _load_entry_points(self) -> None:
        """Find the installed plug-ins (their names only; nothing is imported here)."""
        with self._lock:
            if self._loaded:
                return
            for ep in entry_points(group=self.group):
                self._entry_points.setdefault(ep.name, ep)
            self._loaded = True

    def _class_of(self, name: str) -> type[A] | None:
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        ep = self._entry_points.get(name)
        if ep is None:
            return None
        with self._lock:
            if name not in self._classes:
                try:
                    self._classes[name] = ep.load()
                except Exception as exc:  # a broken plug-in must not hide the others
                    raise ShipError(
                        f"{self.what} plug-in {ep.name!r} ({ep.value}) could not be loaded: {exc}"
                    ) from exc
            return self._classes[name]

    def register(self, cls: type[A], name: str | None = None) -> None:
        key = name or cast(str, getattr(cls, "name"))  # noqa: B009 - every action has one
        self._classes[key] = cls
        self._instances.pop(key, None)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted({*self._classes, *self._entry_points})

    def get(self, name: str) -> A:
        self._load_entry_points()
        if name not in self._instances:
            cls = self._class_of(name)
            if cls is None:
                raise UnknownAction(
                    f"unknown {self.what} type {name!r}; known: {', '.join(self.names())}"
                )
            self._instances[name] = cls()
        return self._instances[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._classes or name in self._entry_points


#: The one registry: what a runbook is checked against when no other is given.
registry: Registry[Any] = Registry()
