"""Helpers shared by the test suites (importable as ``helpers`` from any test module)."""
