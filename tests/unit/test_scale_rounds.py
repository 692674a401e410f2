"""benchmarks/scale.py's rounds: with ``--baseline-src``, every round runs the baseline's
sources and then this checkout's, each run's report is printed and the medians of the
rounds follow; ``--rounds`` alone runs this checkout that many times (it ran once and
said nothing). The runs are stood in for (each is a process with its own workers): what
is checked is which sources run in what order and what is printed from their figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scale

OURS = Path(scale.__file__).resolve().parents[1] / "src"
SCENARIO = "postgresql, 1 worker(s), each up to 8 releases at once"


class Runs:
    """Stands in for ``subprocess.Popen`` of the rounds: each run prints a report line
    and its figures, the next of ``cpu_ms`` for its sources as its CPU per step."""

    def __init__(self, cpu_ms: dict[Path, list[float]], ran: Path | None = None) -> None:
        self.cpu_ms = {src.resolve(): list(values) for src, values in cpu_ms.items()}
        self.ran = ran
        self.commands: list[tuple[Path, list[str]]] = []

    def __call__(self, command: list[str], *, env: dict[str, str], **_: Any) -> Runs.Run:
        src = Path(env["PYTHONPATH"])
        self.commands.append((src, command))
        figures = {
            "source": str((self.ran or src) / "shipcaptain" / "__init__.py"),
            SCENARIO: {"worker CPU per step (ms)": self.cpu_ms[src].pop(0), "lost releases": 0},
        }
        return Runs.Run([f"  report of a run of {src}\n", scale.FIGURES + json.dumps(figures)])

    class Run:
        def __init__(self, lines: list[str]) -> None:
            self.stdout: Iterator[str] = iter(lines)
            self.returncode = 0

        def __enter__(self) -> Runs.Run:
            return self

        def __exit__(self, *exc: object) -> None:
            return None


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    (tmp_path / "src" / "shipcaptain").mkdir(parents=True)
    (tmp_path / "src" / "shipcaptain" / "__init__.py").write_text("")
    return tmp_path / "src"


ARGV = ["--releases", "4", "--scenarios", "scaling", "--workers", "1"]


def test_every_round_runs_the_baseline_then_this_checkout_and_the_medians_follow(
    baseline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = Runs({baseline: [10.0, 14.0, 11.0], OURS: [6.0, 8.0, 9.0]})
    monkeypatch.setattr(scale.subprocess, "Popen", runs)
    assert scale.main([*ARGV, "--rounds", "3", "--baseline-src", str(baseline)]) == 0
    assert [src for src, _ in runs.commands] == [baseline.resolve(), OURS] * 3
    for _, command in runs.commands:  # the same scenarios, once each, figures as JSON
        assert command[2:] == [*ARGV, "--json"]
    out = capsys.readouterr().out
    assert out.count("== round ") == 6
    assert out.count(f"report of a run of {baseline.resolve()}") == 3
    assert out.count(f"report of a run of {OURS}") == 3
    medians = out[out.index("medians of 3 round(s), this checkout against baseline:") :]
    assert medians.splitlines()[1:] == [
        SCENARIO,
        "  worker CPU per step (ms): this checkout 8 (6 / 8 / 9), baseline 11 (10 / 14 / 11)",
        "  lost releases: this checkout 0 (0 / 0 / 0), baseline 0 (0 / 0 / 0)",
    ]


def test_rounds_without_a_baseline_run_this_checkout_each_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = Runs({OURS: [6.0, 7.5]})
    monkeypatch.setattr(scale.subprocess, "Popen", runs)
    assert scale.main([*ARGV, "--rounds", "2"]) == 0
    assert [src for src, _ in runs.commands] == [OURS, OURS]
    out = capsys.readouterr().out
    assert "  worker CPU per step (ms): this checkout 6.8 (6 / 7.5)" in out.splitlines()


def test_a_run_of_other_sources_than_the_baseline_s_is_refused(
    baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline's directory on PYTHONPATH, but the package imported from elsewhere
    (the virtualenv's own): its figures are not the baseline's."""
    monkeypatch.setattr(scale.subprocess, "Popen", Runs({baseline: [10.0]}, ran=OURS))
    with pytest.raises(SystemExit, match=r"round 1, baseline: ran .*, not the sources in"):
        scale.main([*ARGV, "--baseline-src", str(baseline)])


def test_a_baseline_without_the_package_is_refused_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Runs({})
    monkeypatch.setattr(scale.subprocess, "Popen", runs)
    with pytest.raises(SystemExit, match="baseline: no shipcaptain package in"):
        scale.main([*ARGV, "--rounds", "2", "--baseline-src", str(tmp_path)])
    assert runs.commands == []
