"""Fixtures of the end-to-end tests that start real processes."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import postmaster


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # a short path: the PostgreSQL socket lives in the data directory and socket paths are limited
    path = Path(f"/tmp/kontor-serve-{uuid.uuid4().hex[:8]}")
    yield path
    pm = postmaster(path / "pgdata")
    if pm is not None:  # never leave a server behind, whatever the test did
        pm.terminate()
        pm.wait(10)
    shutil.rmtree(path, ignore_errors=True)
    for log in path.parent.glob(f"{path.name}.*.log"):
        log.unlink()
