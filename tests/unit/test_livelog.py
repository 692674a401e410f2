"""The kept log of a running try: bounded, masked, written at most every half second, and
the lines held back by that are written by a timer, never after the try ended."""

from __future__ import annotations

import threading

import pytest

from shipcaptain.engine import livelog
from shipcaptain.engine.livelog import KEEP_CHARS, KEEP_LINES, LiveLog


class Writes:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self.came = threading.Event()

    def __call__(self, summary: str, detail: str) -> None:
        self.got.append((summary, detail))
        self.came.set()


def test_the_kept_lines_are_bounded_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livelog, "THROTTLE", 0.0)  # every line is written
    writes = Writes()
    log = LiveLog(writes, lambda line: line.replace("hunter22", "***"))
    for n in range(KEEP_LINES + 50):
        log.add(f"line {n} pw=hunter22")
    lines = log.detail().splitlines()
    assert len(lines) == KEEP_LINES
    assert lines[0] == "line 50 pw=***"
    assert writes.got[-1] == (f"line {KEEP_LINES + 49} pw=***", log.detail())
    assert "hunter22" not in "".join(d for _, d in writes.got)
    log.add("x" * (KEEP_CHARS * 2))  # one huge line: the newest characters
    assert len(log.detail()) == KEEP_CHARS
    log.close()


def test_a_line_held_back_by_the_throttle_is_written_by_the_timer() -> None:
    writes = Writes()
    log = LiveLog(writes, str)
    log.add("first")  # within half a second of the start: held back
    log.add("second")
    assert writes.got == []
    assert writes.came.wait(30), "the held-back lines were never written"
    assert writes.got == [("second", "first\nsecond")]  # once, both lines
    log.close()


def test_nothing_is_written_after_the_try_ended() -> None:
    writes = Writes()
    log = LiveLog(writes, str)
    log.add("held back")
    log.close()
    log.add("from a thread that overran its timeout")
    finished = threading.Timer(livelog.THROTTLE * 3, lambda: None)
    finished.start()
    finished.join()  # the cancelled timer's time has passed
    assert writes.got == []


def test_the_held_back_lines_of_many_tries_are_written_by_one_timer_thread() -> None:
    writes = [Writes() for _ in range(20)]
    logs = [LiveLog(w, str) for w in writes]
    for n, log in enumerate(logs):
        log.add(f"line {n}")  # each held back: a flush due for each
    for w in writes:
        assert w.came.wait(30), "held-back lines were never written"
    assert [w.got for w in writes] == [[(f"line {n}", f"line {n}")] for n in range(20)]
    timers = [t for t in threading.enumerate() if t.name == "livelog" and t.is_alive()]
    assert len(timers) == 1  # not a thread a try
    for log in logs:
        log.close()
