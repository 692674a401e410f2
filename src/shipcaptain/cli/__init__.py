"""The command line: a thin layer over ``shipcaptain.client.Client``."""
