"""What the web tests share: an engine in this process on a throwaway database (both
backends), which runs the releases the application under test starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import Harness, harness


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running
