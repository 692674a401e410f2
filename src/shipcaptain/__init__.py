"""shipcaptain: run deployment runbooks as durable, auditable releases."""

__version__ = "0.1.0"
