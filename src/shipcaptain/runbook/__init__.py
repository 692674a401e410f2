"""The runbook format: pure data models with validation, no I/O beyond reading the file."""
