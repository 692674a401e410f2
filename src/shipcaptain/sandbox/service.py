"""What every sandbox server shares: ``start`` and ``stop``, and ``with`` for both."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Self

from shipcaptain.stop_signal import StopRequested


class Service:
    """A server of the sandbox (or a test double): ``with Server(...) as s`` starts it and
    stops it afterwards, whatever happened in between."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_stopped(service: Service, started: Callable[[], None]) -> None:
    """Start ``service``, call ``started`` (to print where it is), and keep it running until
    SIGTERM or Ctrl-C; then stop it. For the sandbox servers' command lines."""
    stop = StopRequested().handle(signal.SIGTERM, signal.SIGINT)
    with service:
        started()
        stop.wait()


def print_env(values: Mapping[str, str], env_file: Path | None) -> None:
    """Say where a started service is, as ``export NAME=value`` lines for a shell: on
    stdout, and in ``env_file`` too when one is given (to ``source`` from another one)."""
    lines = "".join(f"export {k}={v}\n" for k, v in values.items())
    if env_file is not None:
        env_file.write_text(lines, encoding="utf-8")
    print(lines, end="", flush=True)
