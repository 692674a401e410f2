"""The CLI's tables (rich): at 80 and 120 columns no line is wider than the terminal, and
every row's cells start where their column's header does (long cells wrap in their
column); with no terminal and no COLUMNS, nothing wraps."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from rich.cells import cell_len

from shipcaptain.cli.render import print_release, print_release_list, print_workers
from shipcaptain.cli.tables import Column, print_table, width
from shipcaptain.client import ReleaseView, StepView, WorkerStatus
from shipcaptain.records import ReleaseRecord, StepRunRecord, WorkerRecord

AT = datetime(2026, 12, 4, 16, 54, 5, tzinfo=UTC)
LONG = "valuecanvas-platform-release-train-with-a-name-longer-than-any-column-would-be"


def _release(i: int, name: str, status: str = "running") -> ReleaseRecord:
    return ReleaseRecord(
        id=f"rel-20261204-1654-{i:04d}",
        runbook_name=name,
        runbook_digest="0" * 64,
        runbook_text="",
        environment="production",
        started_by="casey.longname@example.com",
        params={"version": "1.4.0-rc.1+build.20261204"},
        status=cast(Any, status),
        created_at=AT,
    )


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def _check(lines: list[str], width: int, headers: list[str], rows: list[list[str]]) -> None:
    """No line wider than ``width``; each row's cells in their columns: the part of a
    row's first line under each header is the start of that cell's text (``rows``)."""
    assert lines, "the table printed nothing"
    assert max(cell_len(line) for line in lines) <= width, "\n".join(lines)
    header = lines[0]
    starts, at = [], 0
    for title in headers:
        at = header.index(title, at)
        starts.append(at)
        at += len(title)
    ends = [*starts[1:], None]
    for row in rows:
        line = next(x for x in lines if x.startswith(row[0]))
        for start, end, text in zip(starts, ends, row, strict=True):
            part = line[start:end].strip()
            assert part, f"nothing at column {start}:\n{line}"
            assert text.startswith(part), f"{part!r} is not the start of {text!r}:\n{line}"
            assert start == 0 or line[start - 1] == " ", line
    continuation = [x for x in lines[1:] if not any(x.startswith(r[0]) for r in rows)]
    for line in continuation:  # a wrapped cell's next line: blank under the id column
        assert line[: starts[1]].strip() == "", line


@pytest.mark.parametrize("width", [80, 120])
def test_release_list_fits_and_aligns(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    releases = [_release(1, LONG), _release(2, "short", "succeeded")]
    print_release_list(releases)
    lines = _lines(capsys)
    headers = ["ID", "RUNBOOK", "ENV", "VERSION", "STATUS", "BY", "CREATED"]
    _check(
        lines,
        width,
        headers,
        [
            [
                r.id,
                r.runbook_name,
                "production",
                "1.4.0-rc.1+build.20261204",
                r.status,
                "casey.longname@example.com",
                "2026-12-04 16:54:05",
            ]
            for r in releases
        ],
    )
    if width == 80:
        assert len(lines) > 3, "the long runbook name wraps in its column"


@pytest.mark.parametrize("width", [80, 120])
def test_workers_fit_and_align(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    found = [
        WorkerStatus(
            worker=WorkerRecord(
                executor_id=f"worker-{n}-on-a-host",
                pid=4242 + n,
                hostname="build-runner-with-a-long-hostname.internal.example.com",
                kind="worker",
                started_at=AT,
                heartbeat_at=AT,
            ),
            alive=n == 1,
            silent_for=0.5 + n,
            releases=[f"rel-20261204-1654-{i:04d}" for i in range(n * 3)],
        )
        for n in (1, 2)
    ]
    print_workers(found, takeover_after=15)
    lines = _lines(capsys)
    headers = ["EXECUTOR", "KIND", "HOST:PID", "HEARTBEAT", "STATE", "RELEASES"]
    rows = [
        [
            w.worker.executor_id,
            "worker",
            f"{w.worker.hostname}:{w.worker.pid}",
            f"{w.silent_for:.1f}s ago",
            "alive" if w.alive else "gone (>15s)",
            ", ".join(w.releases),
        ]
        for w in found
    ]
    _check(lines, width, headers, rows)
    heartbeat_end = lines[0].index("HEARTBEAT") + len("HEARTBEAT")
    for row in rows:
        line = next(x for x in lines if x.startswith(row[0]))
        assert line[:heartbeat_end].endswith(row[3]), "right-aligned under its header"


@pytest.mark.parametrize("width", [80, 120])
def test_release_steps_fit_and_align_across_phases(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    release = _release(1, LONG)

    def step(sid: str, phase: str, status: str, summary: str) -> StepView:
        record = StepRunRecord(
            release_id=release.id,
            step_id=sid,
            run=1,
            attempt=2 if status == "failed" else 1,
            status=cast(Any, status),
            started_at=AT,
            ended_at=AT + timedelta(seconds=75),
            summary=summary,
        )
        return StepView(sid, phase, sid, "shell", [], record)

    steps = [
        step("build", "pre-flight", "succeeded", "built " + "image " * 30),
        step("migrate_database_schema_expand", "deploy", "failed", "a short one"),
    ]
    view = ReleaseView(release=release, steps=steps, gates=[])
    print_release(view)
    lines = _lines(capsys)
    table = lines[lines.index(" pre-flight") :]  # the lines above are prose, not a table
    assert max(cell_len(line) for line in table) <= width, "\n".join(table)
    assert " deploy" in table
    rows = [x for x in table if x.startswith("  ✔ ") or x.startswith("  ✘ ")]
    assert [r.split()[1] for r in rows] == ["build", "migrate_database_schema_expand"]
    status_at = {r.index(s) for r, s in zip(rows, ["succeeded", "failed"], strict=True)}
    assert len(status_at) == 1, "the status column lines up across phases:\n" + "\n".join(rows)
    assert "1m15s try 2" in rows[1]


def test_no_terminal_and_no_columns_nothing_wraps(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    print_table([Column("ID"), Column("TEXT", wrap=True)], [["a", "word " * 60]])
    lines = _lines(capsys)
    assert len(lines) == 2
    assert lines[1].startswith("a ")
    assert lines[1].index("word") == lines[0].index("TEXT"), "two spaces between columns"
    assert lines[1] == lines[1].rstrip(), "no padding after the last cell"


class _Terminal:
    """A stdout that is a terminal (file descriptor 1)."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("size", "expected"),
    [(os.terminal_size((123, 40)), 123), (os.terminal_size((0, 0)), 80), (OSError(), 80)],
    ids=["its width", "no width", "no answer"],
)
def test_on_a_terminal_tables_fit_its_width(
    monkeypatch: pytest.MonkeyPatch, size: os.terminal_size | OSError, expected: int
) -> None:
    """As shutil.get_terminal_size answers (after COLUMNS): the terminal's width, else 80."""

    def terminal_size(fd: int) -> os.terminal_size:
        assert fd == 1
        if isinstance(size, OSError):
            raise size
        return size

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stdout", _Terminal())
    monkeypatch.setattr(os, "get_terminal_size", terminal_size)
    assert width() == expected
    monkeypatch.setenv("COLUMNS", "97")
    assert width() == 97
