"""The private parts of DBOS the engine relies on (shipcaptain/engine/dbos_private.py): the
installed DBOS has them, they mean what the engine takes them to mean, a DBOS without them
is refused with a clear message, and no other module reaches into DBOS's privates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dbos import DBOSClient

import shipcaptain
from shipcaptain.engine import dbos_private, functions
from shipcaptain.errors import ShipError

SOURCE = Path(shipcaptain.__file__).parent

#: how code reaches into DBOS's privates: its private modules, and the attributes
#: dbos_private.py uses
PRIVATE = re.compile(
    r"from dbos\._|import dbos\._|from dbos import _|\b_sys_db\b|_dbos_global_instance"
    r"|_active_workflows_set|_get_or_create_dbos_registry|workflow_info_map"
)


def test_the_installed_dbos_has_every_private_part_the_engine_relies_on(tmp_path: Path) -> None:
    client = DBOSClient(system_database_url=f"sqlite:///{tmp_path / 'dbos.sqlite'}")
    try:
        gaps = dbos_private.missing(client)
    finally:
        client.destroy()
    assert gaps == [], (
        f"the installed DBOS {dbos_private.dbos_version()} lacks private parts that "
        f"shipcaptain's engine relies on: {gaps}; adapt shipcaptain/engine/dbos_private.py "
        "(and docs/explanation/durable-engine.md) before upgrading DBOS"
    )
    dbos_private.check(client)


def test_the_registry_names_the_workflows_and_steps_the_engine_defines() -> None:
    names = dbos_private.registered_names()
    assert "shipcaptain.release" in names
    assert "shipcaptain.incident_clock" in names
    # a step is registered as a workflow of its own under DBOS's temporary prefix
    assert f"{dbos_private.TEMP_PREFIX}shipcaptain.clock" in names
    workflows, steps = functions.registered()
    assert "shipcaptain.release" in workflows
    assert "shipcaptain.clock" in steps


def test_outside_a_launched_engine_no_workflow_is_active() -> None:
    assert dbos_private.active_workflows() in (None, [])


def test_a_dbos_without_the_recovery_hand_over_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dbos._sys_db import SystemDatabase

    monkeypatch.delattr(SystemDatabase, "reenqueue_for_recovery")
    with pytest.raises(ShipError) as refused:
        dbos_private.check()
    message = str(refused.value)
    assert f"the installed DBOS {dbos_private.dbos_version()} lacks" in message
    assert "SystemDatabase.reenqueue_for_recovery: not there" in message
    assert "dbos_private.py" in message


def test_a_recovery_hand_over_with_other_parameters_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dbos._sys_db import SystemDatabase

    def changed(self: object, workflow_id: str, queue: str) -> bool:
        return False

    monkeypatch.setattr(SystemDatabase, "reenqueue_for_recovery", changed)
    with pytest.raises(ShipError, match=r"takes \(workflow_id, queue\), not \(workflow_id, "):
        dbos_private.check()


def test_a_client_without_its_system_database_is_refused() -> None:
    with pytest.raises(ShipError, match=r"DBOSClient\._sys_db: not there"):
        dbos_private.check(object())


def test_no_other_module_reaches_into_dbos_privates() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{n}: {line.strip()}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path.name != "dbos_private.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert found == [], "use shipcaptain/engine/dbos_private.py instead:\n" + "\n".join(found)
