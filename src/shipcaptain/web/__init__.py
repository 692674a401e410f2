"""The web dashboard and the REST API: a thin layer over the client contract
(``shipcaptain.contract``: :class:`Service` as each person who asks, :class:`Host` for what
comes before a person); the app factory alone makes the in-process client.

``app.create_app`` builds the ASGI application; ``server.serve`` runs it (with the engine's
workers, unless told not to) for ``shipcaptain server``.
"""
