"""Following a release as it runs: a live table on a terminal, a stream of timeline
lines elsewhere (CI logs, pipes)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shipcaptain.cli.timeline import live_frame, print_events
from shipcaptain.client import FINISHED, Client
from shipcaptain.records import EventRecord, ReleaseRecord

if TYPE_CHECKING:
    from shipcaptain.contract import Service

#: timeline events the live table shows under the steps (the point of no return, rollbacks,
#: announcements and pages): the rest is in `release show`
NOTICE_PREFIXES = ("release.point_of_no_return", "rollback.", "comms.", "page.")

#: seconds between two looks at a release a server runs
REMOTE_POLL = 1.0


class _Pause:
    """The wait between two looks at a release: ``interval`` seconds, cut short once when
    ``ended`` is set (this process's workflow of the release returned), so the command
    ends as soon as the release has, not up to an interval later."""

    def __init__(self, interval: float, ended: threading.Event | None) -> None:
        self.interval = interval
        self.ended = ended

    def __call__(self) -> None:
        if self.ended is None:
            time.sleep(self.interval)
        elif self.ended.wait(self.interval):
            self.ended = None  # woken once; a look that still finds it running waits again


#: whether following a release that has not finished may stop here (see ``follow``)
StopAt = Callable[[ReleaseRecord], bool]


def follow(
    client: Client,
    release_id: str,
    *,
    quiet: bool = False,
    ended: threading.Event | None = None,
    stop_at: StopAt | None = None,
) -> ReleaseRecord:
    """Show progress until the release finishes, or until ``stop_at`` says of the release
    as it is now that following it may stop (a release waiting for people, handed to the
    workers); return its last record. ``ended``: set when the workflow running the release
    in this process returned."""
    pause = _Pause(client.settings.poll_interval, ended)

    def done(release: ReleaseRecord) -> bool:
        return release.status in FINISHED or (stop_at is not None and stop_at(release))

    if quiet:
        while True:
            release = client.get(release_id)
            if done(release):
                return release
            pause()
    if sys.stdout.isatty():
        return _follow_live(client, release_id, pause, done)
    return _follow_stream(client, release_id, pause, done)


def follow_remote(remote: Service, release_id: str, *, quiet: bool = False) -> ReleaseRecord:
    """Print the timeline of a release a server runs until it finishes."""
    seen = 0
    while True:
        events = remote.events(release_id, after=seen)
        seen = max([seen, *(e.seq for e in events)])
        if not quiet:
            print_events(events)
        if remote.status(release_id) in FINISHED:
            if not quiet:
                print_events(remote.events(release_id, after=seen))
            return remote.get(release_id)
        time.sleep(REMOTE_POLL)


def _follow_stream(client: Client, release_id: str, pause: _Pause, done: StopAt) -> ReleaseRecord:
    seen = 0
    while True:
        release = client.get(release_id)
        events = client.list_events(release_id=release_id, after_seq=seen)
        seen = max([seen, *(e.seq for e in events)])
        print_events(events)
        if done(release):
            return release
        pause()


def _follow_live(client: Client, release_id: str, pause: _Pause, done: StopAt) -> ReleaseRecord:
    from rich.console import RenderableType
    from rich.live import Live

    notices: list[EventRecord] = []
    seen = 0

    def frame() -> tuple[RenderableType, ReleaseRecord]:
        nonlocal seen
        view = client.show(release_id, events=False)
        for event in client.list_events(release_id=release_id, after_seq=seen):
            seen = max(seen, event.seq)
            if event.kind.startswith(NOTICE_PREFIXES):
                notices.append(event)
        return live_frame(view, notices[-6:], datetime.now(UTC)), view.release

    shown, release = frame()
    with Live(shown, refresh_per_second=4, transient=False) as live:
        while not done(release):
            pause()
            shown, release = frame()
            live.update(shown)
    return release
