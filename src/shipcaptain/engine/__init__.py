"""The durable engine: runs a release's DAG of steps with checkpoints (DBOS Transact).

Only this package imports dbos. It never imports a driver (psycopg, httpx, kubernetes,
slack): actions do that, and the engine reaches them through the registry. DBOS is
imported without psycopg and PyYAML until they are used (see ``shipcaptain.engine.dbos_import``).
"""

from shipcaptain.engine import dbos_import
from shipcaptain.engine.ids import release_workflow_id, step_workflow_id

dbos_import.install()

__all__ = ["release_workflow_id", "step_workflow_id"]
