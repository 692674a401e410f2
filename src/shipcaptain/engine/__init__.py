"""The durable engine: runs a release's DAG of steps with checkpoints (DBOS Transact).

Only this package imports dbos. It never imports a driver (psycopg, httpx, kubernetes,
slack): actions do that, and the engine reaches them through the registry.
"""

from shipcaptain.engine.ids import release_workflow_id, step_workflow_id

__all__ = ["release_workflow_id", "step_workflow_id"]
