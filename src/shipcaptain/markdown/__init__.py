"""Markdown runbooks: read the Markdown a team already keeps (``import``), write a
runbook back as readable Markdown (``export``), and run a Markdown runbook directly."""
