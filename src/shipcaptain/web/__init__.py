"""The web dashboard and the REST API: a thin layer over ``shipcaptain.client.Client``.

``app.create_app`` builds the ASGI application; ``server.serve`` runs it (with the engine's
workers, unless told not to) for ``shipcaptain server``.
"""
