"""Clients for the systems a release talks to or looks at (git, GitHub, monitoring).
Actions use these; the clients translate driver errors into ``ShipError`` subclasses where
they enter."""
