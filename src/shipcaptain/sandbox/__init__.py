"""The sandbox: local stand-ins for production, so a whole release can run on one laptop.

Each stand-in is a real server on 127.0.0.1 that real clients talk to; the product code
only gets a URL (or a kubeconfig) and cannot tell it from the real service. They power
``shipcaptain demo`` and the tests.

* ``health_server``: an application's ``/health`` endpoint whose build hash and health
  can be changed while it runs (what the smoke tests check after a rollout).

The stand-ins are imported from their own modules (``from shipcaptain.sandbox.health_server
import HealthServer``); this package imports nothing, so ``python -m`` works for each.
"""
