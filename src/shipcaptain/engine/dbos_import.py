"""Importing DBOS without psycopg, PyYAML and SQLAlchemy's ORM until they are used (issue
27: ``release start``).

DBOS imports psycopg, the PostgreSQL driver, at the top of two of its modules (its
utilities: ``import psycopg``; its system database: ``from psycopg import errors``), even
for a SQLite system database, and reads it only inside functions that classify
PostgreSQL errors; it imports PyYAML at the top of its configuration module and uses it
only to read a ``dbos-config.yaml``, which shipcaptain never has (it passes its
configuration). Both imports cost about 80 ms of CPU, a third of importing the engine,
before the first step of every ``release start`` on SQLite.

So the first ``import dbos`` of the process runs with stand-ins for the modules of
:data:`DEFERRED` not imported yet (``psycopg``, ``psycopg.errors``, ``yaml``) in
``sys.modules``: DBOS's modules bind them, and the stand-ins leave ``sys.modules`` when
``dbos`` is imported, so every later import of these names (SQLAlchemy's PostgreSQL
dialect, an action, the runbook outline) gets the real module. The first attribute DBOS
reads through a stand-in (``psycopg.OperationalError``, ``pg_errors.LockNotAvailable``)
imports the real module and answers from it, so DBOS behaves as before, only these
imports come when (if ever) they are needed. On PostgreSQL the store has imported psycopg
before the engine is imported, and psycopg is not replaced.

This is a finder on ``sys.meta_path`` that matches only the name ``dbos``, installed by
``shipcaptain.engine`` (``install``) and gone once DBOS is imported: DBOS's code is not
changed. ``tests/unit/test_dbos_import.py`` checks the stand-ins against the installed
DBOS; a DBOS that reads one of these names while it is imported just imports the module
then (slower, not different).

SQLAlchemy's ORM and its asyncio extension (:data:`PROXIED`, ~45 ms of CPU idle, ~100 ms
under load: a fifth of importing DBOS) are deferred the same way, by name (and so are
``croniter``, which DBOS calls only for cron schedules shipcaptain never makes, and
``dateutil.parser``, whose ``isoparse`` its serializer calls for a tagged date: ~10 ms
of CPU idle together, before the first step of every ``release start``): DBOS binds
classes and functions from them (``from sqlalchemy.orm import Session``, ``sessionmaker``,
``create_async_engine``, ...) for an application database (a "datasource"), which
shipcaptain never configures, and for type hints. Its system database asks only
``isinstance(conn, Session)`` of a connection shipcaptain's engine hands it (a SQLAlchemy
``Connection``). Each name it binds is a :class:`Proxied` stand-in: calling it, reading an
attribute of it or subscripting it uses the real class (imported then); ``isinstance``
and ``issubclass`` are False while the real module was never imported (nothing can be an
instance of a class not yet defined) and the real answer after.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # not imported at run time: importlib.abc imports importlib.resources,
    # and with it tempfile, shutil, random and the compression modules (~8-20 ms of every
    # command that imports the client, which imports this package; issue 27). The import
    # system needs only the methods below, not the base classes.
    from importlib.abc import Loader

#: the modules DBOS binds at import and uses only later (PostgreSQL's errors, a config
#: file), and the submodules of them it binds
DEFERRED: dict[str, tuple[str, ...]] = {"psycopg": ("errors",), "yaml": ()}

#: the modules whose classes and functions DBOS binds by name at import and uses only with
#: an application database (or in type hints), or only inside functions (its cron
#: schedules: ``croniter``; its portable serializer's dates: ``dateutil.parser``): each
#: name read from them is a :class:`Proxied`
PROXIED: tuple[str, ...] = (
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
    "croniter",
    "dateutil.parser",
)


class Deferred(types.ModuleType):
    """A stand-in for the module ``name``: the first attribute read imports the real
    module (the stand-in leaves ``sys.modules`` first) and answers from it."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # the import system's questions (__path__, __spec__)
            raise AttributeError(attr)
        value = getattr(_real(self.__name__), attr)
        setattr(self, attr, value)  # the next read finds it without asking again
        return value


class _ProxiedMeta(type):
    """The type of :class:`Proxied` stand-ins: every use but a type check goes to the real
    class (or function) ``_module._name``."""

    _module: str
    _name: str

    def _real_one(cls) -> Any:
        return getattr(_real(cls._module), cls._name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real_one()(*args, **kwargs)

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):  # typing's and the import system's questions
            raise AttributeError(attr)
        return getattr(cls._real_one(), attr)

    def __getitem__(cls, item: Any) -> Any:
        # a type hint evaluated at import (``Optional[async_sessionmaker[Any]]``): the
        # stand-in itself, so the hint does not import the module
        return cls

    def __instancecheck__(cls, instance: Any) -> bool:
        module = sys.modules.get(cls._module)
        if module is None or isinstance(module, Deferred):
            return False  # never imported: nothing is an instance of its classes
        return isinstance(instance, getattr(module, cls._name))

    def __subclasscheck__(cls, subclass: Any) -> bool:
        module = sys.modules.get(cls._module)
        if module is None or isinstance(module, Deferred):
            return False
        return issubclass(subclass, getattr(module, cls._name))


class Proxied(metaclass=_ProxiedMeta):
    """A name bound from a module of :data:`PROXIED` while DBOS was imported."""

    _module = ""
    _name = ""


class DeferredNames(types.ModuleType):
    """A stand-in for a module of :data:`PROXIED`: each name read from it is a
    :class:`Proxied` stand-in for that name (the module is not imported)."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        proxy = _ProxiedMeta(attr, (Proxied,), {"_module": self.__name__, "_name": attr})
        setattr(self, attr, proxy)
        return proxy


def _real(name: str) -> types.ModuleType:
    """The real module ``name``, imported if it is not yet (after removing stand-ins)."""
    module = sys.modules.get(name)
    if isinstance(module, DeferredNames):
        del sys.modules[name]
        module = None
    elif isinstance(module, Deferred):
        _remove_stand_ins(name.partition(".")[0])
        module = None
    return module if module is not None else importlib.import_module(name)


def _remove_stand_ins(top: str) -> None:
    for name in [top, *(f"{top}.{sub}" for sub in DEFERRED.get(top, ()))]:
        if isinstance(sys.modules.get(name), Deferred):
            del sys.modules[name]


@contextmanager
def deferred_drivers() -> Iterator[list[str]]:
    """Stand-ins for the modules of :data:`DEFERRED` not imported yet, while the block
    runs; the names replaced."""
    replaced = []
    for top, subs in DEFERRED.items():
        if top in sys.modules:
            continue  # imported already (the PostgreSQL store): nothing to save
        stand_in = Deferred(top)
        sys.modules[top] = stand_in
        for sub in subs:
            child = Deferred(f"{top}.{sub}")
            sys.modules[child.__name__] = child
            setattr(stand_in, sub, child)
        replaced.append(top)
    for name in PROXIED:
        if name not in sys.modules:
            sys.modules[name] = DeferredNames(name)
            replaced.append(name)
    try:
        yield replaced
    finally:
        for name in replaced:
            if name in PROXIED:
                if isinstance(sys.modules.get(name), DeferredNames):
                    del sys.modules[name]
            else:
                _remove_stand_ins(name)


class _DbosLoader:
    """DBOS's own loader, run with the stand-ins in place (a loader as the import system
    calls it: ``create_module`` and ``exec_module``)."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # the package's spec names its own loader again (its resources, reloads)
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with deferred_drivers():
            self.loader.exec_module(module)


class DbosFinder:
    """Finds ``dbos`` as the other finders do, and has it imported with the stand-ins (a
    meta path finder as the import system calls it: ``find_spec``)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "dbos":
            return None
        uninstall()  # once: DBOS is imported only once per process
        spec = importlib.util.find_spec(fullname)  # as the other finders find it
        if spec is not None and spec.loader is not None:
            spec.loader = cast("Loader", _DbosLoader(spec.loader))
        return spec


_FINDER = DbosFinder()
_LOCK = threading.Lock()


def install() -> None:
    """Import DBOS with the stand-ins when it is first imported (nothing if it is)."""
    with _LOCK:
        if "dbos" not in sys.modules and _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    with _LOCK:
        if _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
