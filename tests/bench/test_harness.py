"""Smoke run of the benchmark harness with tiny sizes: it starts PostgreSQL, the service and the load
generator, runs every workload and prints the table. Asserts only that the harness works, never speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.timeout(300)
def test_quick_run_produces_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1 = some target missed, which tiny sizes may do
    table = json.loads(out.read_text())["table"]
    workloads = [row["workload"] for row in table]
    assert [w.split()[0] for w in workloads] == [
        "P1",
        "P1",
        "P2",
        "P2",
        "P1/P2",
        "P1/P2",
        "P3",
        "P4",
        "P4",
        "P4",
        "P4",
        "P5",
        "P6",
        "P6",
        "P7",
    ]
    for row in table:
        assert row["figure"] is not None, row
        assert row["figure"] > 0, row
    results = json.loads(out.read_text())["results"]
    for name in ("P1", "P2", "P3"):
        assert set(results[name]["statuses"]) == {"201"}, (name, results[name]["statuses"])
    assert "P7 service RSS" in done.stdout
    for name in ("P1", "P2"):  # every posting of the run went through the coalescing queue
        stats = results[f"{name}_coalescing"]
        assert stats["postings"] >= results[name]["requests"], (name, stats)
        assert sum(stats["commits_by_batch_size"].values()) == stats["commits"] > 0
    assert all("passed" in row for row in table)
    assert (results["P5"]["status"], results["P5"]["matched"]) == (201, 500)
    assert results["P5_baseline"]["matched"] == 500
    assert (results["P6"]["status"], results["P6"]["notices"], results["P6_reminders"]["notices"]) == (200, 300, 300)
