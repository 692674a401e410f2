"""DBOS imported without psycopg, PyYAML and SQLAlchemy's ORM until they are used
(shipcaptain/engine/dbos_import.py): on SQLite the engine never loads the PostgreSQL
driver, DBOS's error checks still see the real driver's classes, nothing is replaced
when psycopg is loaded already, and the ORM's names DBOS binds act as the real ones.

Each case runs in a fresh interpreter (a subprocess): this one has imported DBOS already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def probe(code: str) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_importing_the_engine_loads_dbos_without_psycopg() -> None:
    found = probe(
        """
        import json, sys
        import shipcaptain.engine.engine
        from shipcaptain.engine import dbos_import
        import dbos
        print(json.dumps({
            "dbos": "dbos" in sys.modules,
            "psycopg": sorted(m for m in sys.modules if m.split(".")[0] == "psycopg"),
            "orm": sorted(
                m for m in sys.modules if m.startswith(("sqlalchemy.orm", "sqlalchemy.ext"))
            ),
            "finder left": dbos_import._FINDER in sys.meta_path,
            "own loader": type(dbos.__spec__.loader).__name__,
        }))
        """
    )
    assert found == {
        "dbos": True,
        "psycopg": [],
        "orm": [],
        "finder left": False,
        "own loader": "SourceFileLoader",  # DBOS's package names its own loader again
    }


def test_dbos_sees_the_real_driver_when_it_classifies_an_error() -> None:
    """DBOS's PostgreSQL error checks, called through the stand-ins it bound at import,
    import psycopg then and answer as with the driver imported up front."""
    found = probe(
        """
        import json, sys
        import shipcaptain.engine.engine
        import dbos._dbos_config as config, dbos._sys_db as sys_db, dbos._utils as utils
        from sqlalchemy.exc import DBAPIError
        before = "psycopg" in sys.modules
        config_yaml = config.yaml.safe_load("name: shipcaptain")  # DBOS's config file reader
        bound = (type(utils.psycopg).__name__, type(sys_db.pg_errors).__name__)
        import psycopg
        from psycopg import errors
        timeout = DBAPIError("SELECT 1", None, errors.ConnectionTimeout("timed out"))
        locked = DBAPIError("SELECT 1", None, errors.LockNotAvailable("locked"))
        other = DBAPIError("SELECT 1", None, ValueError("not the driver's"))
        print(json.dumps({
            "before": before,
            "bound": bound,
            "timeout retried": utils.retriable_postgres_exception(timeout),
            "other retried": utils.retriable_postgres_exception(other),
            "lock conflict": sys_db.SystemDatabase.is_lock_conflict(None, locked),
            "no conflict": sys_db.SystemDatabase.is_lock_conflict(None, timeout),
            "same classes": utils.psycopg.OperationalError is psycopg.OperationalError
            and sys_db.pg_errors.LockNotAvailable is errors.LockNotAvailable,
            "real in sys.modules": type(sys.modules["psycopg"]).__name__,
            "config yaml": config_yaml,
        }))
        """
    )
    assert found == {
        "before": False,
        "bound": ["Deferred", "Deferred"],
        "timeout retried": True,
        "other retried": False,
        "lock conflict": True,
        "no conflict": False,
        "same classes": True,
        "real in sys.modules": "module",
        "config yaml": {"name": "shipcaptain"},
    }


def test_a_psycopg_imported_before_the_engine_is_the_one_dbos_binds() -> None:
    """The PostgreSQL store imports psycopg before the engine: nothing is replaced."""
    found = probe(
        """
        import json, sys
        import psycopg
        import shipcaptain.engine.engine
        import dbos._sys_db as sys_db, dbos._utils as utils
        print(json.dumps({
            "utils": utils.psycopg is psycopg,
            "errors": sys_db.pg_errors is psycopg.errors,
        }))
        """
    )
    assert found == {"utils": True, "errors": True}


def test_the_stand_ins_leave_sys_modules_and_a_later_import_gets_the_driver() -> None:
    found = probe(
        """
        import json, sys
        from shipcaptain.engine.dbos_import import Deferred, deferred_drivers
        names = ("psycopg", "psycopg.errors", "yaml")
        with deferred_drivers() as replaced:
            inside = {n: type(sys.modules[n]).__name__ for n in names}
            import psycopg, yaml
            from psycopg import errors
            bound = type(psycopg).__name__, type(errors).__name__, type(yaml).__name__
        after = {n: n in sys.modules for n in names}
        value = errors.UniqueViolation  # read after the block: the real module answers
        loaded = yaml.safe_load("a: 1")
        import psycopg as real
        print(json.dumps({
            "replaced": replaced,
            "inside": inside,
            "bound": bound,
            "after": after,
            "real": type(real).__name__,
            "same": value is real.errors.UniqueViolation,
            "yaml": [loaded, type(sys.modules["yaml"]).__name__],
        }))
        """
    )
    assert found == {
        "replaced": [
            "psycopg",
            "yaml",
            "sqlalchemy.orm",
            "sqlalchemy.ext.asyncio",
            "croniter",
            "dateutil.parser",
        ],
        "inside": {"psycopg": "Deferred", "psycopg.errors": "Deferred", "yaml": "Deferred"},
        "bound": ["Deferred", "Deferred", "Deferred"],
        "after": {"psycopg": False, "psycopg.errors": False, "yaml": False},
        "real": "module",
        "same": True,
        "yaml": [{"a": 1}, "module"],
    }


def test_the_orm_names_dbos_binds_act_as_the_real_ones() -> None:
    """DBOS's system database asks whether a connection is an ORM ``Session``: no while the
    ORM was never imported (none can be), the real answer once it is; calling a bound name
    or reading its attributes uses the real class or function."""
    found = probe(
        """
        import json, sys
        import sqlalchemy as sa
        import shipcaptain.engine.engine
        import dbos._sys_db as sys_db, dbos._datasource as datasource
        engine = sa.create_engine("sqlite://")
        with engine.connect() as conn:
            before = isinstance(conn, sys_db.Session)
        loaded_before = "sqlalchemy.orm" in sys.modules
        from sqlalchemy.orm import Session, sessionmaker
        with Session(engine) as session, engine.connect() as conn:
            checks = [
                isinstance(session, sys_db.Session),
                isinstance(conn, sys_db.Session),
                issubclass(Session, sys_db.Session),
            ]
        made = datasource.SyncSessionmaker(expire_on_commit=False)
        print(json.dumps({
            "before": [before, loaded_before],
            "checks": checks,
            "made": type(made) is sessionmaker,
            "attribute": datasource.Session.close is Session.close,
            "hint": datasource.async_sessionmaker[int] is datasource.async_sessionmaker,
        }))
        """
    )
    assert found == {
        "before": [False, False],
        "checks": [True, False, True],
        "made": True,
        "attribute": True,
        "hint": True,
    }


def test_the_cron_and_date_parsers_dbos_binds_are_imported_when_first_used() -> None:
    """DBOS binds ``croniter`` (its cron schedules) and ``dateutil.parser.isoparse`` (its
    serializer's dates) at import: neither is imported with the engine, and each, called
    through the name DBOS bound, answers as the real one (imported then)."""
    found = probe(
        """
        import json, sys
        import shipcaptain.engine.engine
        import dbos._client as client, dbos._scheduler as scheduler
        import dbos._serialization as serialization
        before = sorted(m for m in sys.modules if m.split(".")[0] in ("croniter", "dateutil"))
        valid = client.croniter.is_valid("*/5 * * * *", second_at_beginning=True)
        invalid = client.croniter.is_valid("not a schedule", second_at_beginning=True)
        it = scheduler.croniter("*/5 * * * *")
        parsed = serialization.isoparse("2026-12-06T03:04:05+00:00")
        from croniter import croniter
        from dateutil.parser import isoparse
        print(json.dumps({
            "before": before,
            "valid": [valid, invalid],
            "made": type(it) is croniter,
            "parsed": [parsed == isoparse("2026-12-06T03:04:05+00:00"), parsed.isoformat()],
            "real in sys.modules": [
                type(sys.modules["croniter"]).__name__,
                type(sys.modules["dateutil.parser"]).__name__,
            ],
        }))
        """
    )
    assert found == {
        "before": [],
        "valid": [True, False],
        "made": True,
        "parsed": [True, "2026-12-06T03:04:05+00:00"],
        "real in sys.modules": ["module", "module"],
    }
