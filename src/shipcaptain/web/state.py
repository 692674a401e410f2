"""What the pages and endpoints of the web application share: its state and its files.

Its own module, below :mod:`shipcaptain.web.app`, so that the app imports its routers
(``api``, ``pages``, ``live``, ``slack``) and the routers import this, without a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipcaptain.contract import Host, Service
from shipcaptain.settings import Settings
from shipcaptain.web.auth import Sessions, SignInLimiter

if TYPE_CHECKING:
    from shipcaptain.engine.engine import Engine

#: the web package's directory (its templates and static files)
HERE = Path(__file__).parent


@dataclass
class WebState:
    """What the pages and endpoints share (``request.app.state.web``)."""

    settings: Settings
    host: Host
    """The in-process client as the server holds it: the contract as each viewer
    (:meth:`~shipcaptain.contract.Host.acting_as`), their tokens and sessions."""
    sessions: Sessions
    runbook_root: Path
    run_workers: bool
    limiter: SignInLimiter
    engine: Engine | None = None
    stopping: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> Service:
        """The client contract as the person ``name`` (signed in already)."""
        return self.host.acting_as(name)
