"""The engine's runbook cache: releases of one runbook that a worker starts at once (a
queue's worth) parse it once, not once each."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shipcaptain.actions.registry import registry
from shipcaptain.engine.runtime import Runtime
from shipcaptain.runbook import loader

TEXT = """
name: cached
phases:
  - id: one
    steps:
      - {id: a, action: shell, with: {command: "true"}}
"""


def test_releases_started_at_once_parse_their_runbook_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    parse = loader.parse_runbook
    parsed: list[str] = []

    def slow_parse(text: str, source: str, **kw: Any) -> Any:
        parsed.append(source)
        time.sleep(0.2)  # long enough for every other release to ask meanwhile
        return parse(text, source, **kw)

    monkeypatch.setattr(loader, "parse_runbook", slow_parse)
    rt = Runtime(store=None, registry=registry, executor_id="w", workdir=tmp_path)  # type: ignore[arg-type]
    digest = loader.runbook_digest(TEXT)
    start = threading.Barrier(4)
    got: list[object] = []

    def release() -> None:
        start.wait()
        got.append(rt.runbook(TEXT, digest))

    threads = [threading.Thread(target=release) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(parsed) == 1
    assert len(got) == 4
    assert all(rb is got[0] for rb in got)
    assert rt.runbook(TEXT, digest) is got[0]
    assert len(parsed) == 1
