"""What every sandbox server shares: ``start`` and ``stop``, and ``with`` for both."""

from __future__ import annotations

from typing import Self


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
