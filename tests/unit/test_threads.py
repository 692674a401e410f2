"""The engine's kept threads: each piece of work runs in a daemon thread, under its name, in
a fresh context; a thread that finished is used again, one still busy is not waited for,
and an idle one ends without stranding work given to the pool meanwhile."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from shipcaptain.engine import threads

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="fresh")


def test_work_runs_in_a_daemon_thread_under_its_name_in_a_fresh_context() -> None:
    seen: dict[str, object] = {}

    def job(value: str) -> None:
        me = threading.current_thread()
        seen.update(name=me.name, daemon=me.daemon, mark=MARK.get(), value=value)
        MARK.set("left behind")  # must not reach the next piece of work

    kept = threads.Kept()
    first = kept.start("step-one", job, "a")
    first.join(10)
    assert not first.is_alive()
    assert seen == {"name": "step-one", "daemon": True, "mark": "fresh", "value": "a"}
    second = kept.start("step-two", job, "b")
    second.join(10)
    assert seen == {"name": "step-two", "daemon": True, "mark": "fresh", "value": "b"}


def test_a_thread_that_finished_is_used_again() -> None:
    kept = threads.Kept()  # its own: no idle thread of another test's
    idents: list[int] = []
    for n in range(5):
        work = kept.start(f"w{n}", lambda: idents.append(threading.get_ident()))
        work.join(10)
        assert not work.is_alive()
        time.sleep(0.01)  # the thread is back waiting for work
    assert len(set(idents)) == 1, idents


def test_work_is_not_held_up_by_a_thread_still_busy() -> None:
    release = threading.Event()
    kept = threads.Kept()
    busy = kept.start("busy", release.wait, 30)
    done = kept.start("quick", lambda: None)
    done.join(10)
    assert not done.is_alive()
    assert busy.is_alive()
    busy.join(0.05)  # a join with a timeout returns while the work goes on
    assert busy.is_alive()
    release.set()
    busy.join(10)
    assert not busy.is_alive()


def test_idle_threads_end_and_no_work_is_stranded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "IDLE_EXIT", 0.001)  # threads end as work is handed out
    kept = threads.Kept()
    ran: list[int] = []
    lock = threading.Lock()

    def job(n: int) -> None:
        with lock:
            ran.append(n)

    for n in range(300):
        work = kept.start("stress", job, n)
        if n % 7 == 0:
            time.sleep(0.002)  # let some threads time out between pieces of work
        if n % 50 == 49:
            work.join(10)
    deadline = time.monotonic() + 30
    while len(ran) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(ran) == list(range(300))
    deadline = time.monotonic() + 30
    while (
        any(t.name == "stress" and t.is_alive() for t in threading.enumerate())
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == "stress" and t.is_alive()]
