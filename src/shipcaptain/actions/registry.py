"""The action registry: built-in and third-party actions register the same way, through
the ``shipcaptain.actions`` entry-point group (or ``register`` for code that embeds us)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from threading import Lock
from typing import Any

from shipcaptain.actions.base import _ActionBase
from shipcaptain.errors import ShipError

GROUP = "shipcaptain.actions"


class UnknownAction(ShipError, LookupError):
    code = "SC102"
    exit_code = 2


class Registry:
    """Action types by name. Installed plug-ins are found through their entry points when
    the registry is first asked, but each one is imported only when its action is first
    used: a runbook of shell steps does not import the HTTP, Kubernetes or GitHub clients."""

    def __init__(self) -> None:
        self._classes: dict[str, type[_ActionBase[Any]]] = {}
        self._instances: dict[str, _ActionBase[Any]] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        self._loaded = False
        self._lock = Lock()

    def _load_entry_points(self) -> None:
        """Find the installed plug-ins (their names only; nothing is imported here)."""
        with self._lock:
            if self._loaded:
                return
            for ep in entry_points(group=GROUP):
                self._entry_points.setdefault(ep.name, ep)
            self._loaded = True

    def _class_of(self, name: str) -> type[_ActionBase[Any]] | None:
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
                        f"action plug-in {ep.name!r} ({ep.value}) could not be loaded: {exc}"
                    ) from exc
            return self._classes[name]

    def register(self, cls: type[_ActionBase[Any]], name: str | None = None) -> None:
        self._classes[name or cls.name] = cls
        self._instances.pop(name or cls.name, None)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted({*self._classes, *self._entry_points})

    def get(self, name: str) -> _ActionBase[Any]:
        self._load_entry_points()
        if name not in self._instances:
            cls = self._class_of(name)
            if cls is None:
                raise UnknownAction(
                    f"unknown action type {name!r}; known: {', '.join(self.names())}"
                )
            self._instances[name] = cls()
        return self._instances[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._classes or name in self._entry_points


registry = Registry()
