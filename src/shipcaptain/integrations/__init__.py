"""Clients for the services a release looks at (monitoring, ...). They translate driver
errors into ``ShipError`` subclasses where they enter."""
