"""After a batch completes, ``status --json`` shows its average rate, not a decayed one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli


def test_complete_batch_shows_its_average_rate(cli: Cli, corpus: Path) -> None:
    result = cli("ingest", str(corpus), "-p", "noop", "--json")
    assert result.code == 0, result.stderr
    batch_id = result.json()["batch"]["id"]
    started = cli.scalar("SELECT started_at FROM batches WHERE id = ?", batch_id)
    assert started is not None
    # Pin the processing time to 10 s: the rate is then 30 documents / 10 s, long after.
    cli.sql(
        "UPDATE batches SET started_at = '2020-01-01 00:00:00.000000',"
        " completed_at = '2020-01-01 00:00:10.000000' WHERE id = ?",
        batch_id,
    )
    status = cli("status", batch_id, "--json")
    assert status.code == 0, status.stderr
    data = status.json()
    assert "rate" not in data
    assert data["rate_per_second"] == pytest.approx(3.0)
    assert data["eta_seconds"] == 0
