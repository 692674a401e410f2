"""Faithful loopback stand-ins for the services that cannot run on this machine.

Everything in this package is a test double: a real HTTP server on 127.0.0.1 (port 0)
that real clients (kubectl, httpx, slack_sdk) talk to. They power the test suite and
``shipcaptain demo``. Product code never imports from here; it only ever gets a URL
or a kubeconfig, so it cannot tell a double from the real service.
"""
