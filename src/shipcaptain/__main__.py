"""``python -m shipcaptain``."""

from shipcaptain.cli.main import main

main()
