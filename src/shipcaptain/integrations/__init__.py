"""Clients for the systems a release talks to (git, GitHub). Actions use these; the
clients translate driver errors into ``ShipError`` subclasses where they enter."""
