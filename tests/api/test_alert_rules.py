"""docs/alerts.yml: valid Prometheus rules (promtool), over metrics the real server exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ledger.app import Ledger
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from tests.api.conftest import REPO, Server

RULES = REPO / "docs" / "alerts.yml"
METRIC = re.compile(r"\bledger_[a-z_]+\b")


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules, "no rules in docs/alerts.yml"
    return rules


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


async def test_every_rule_reads_metrics_the_server_exports(server: Server, ledger: Ledger) -> None:
    # A batch with due work and a failure, so the per-batch series have samples.
    await ledger.queue.submit(
        BatchSpec(id="alerting", processor="noop", owner="acme"),
        [SourceSpec(f"/a/{i}") for i in range(5)],
    )
    worker = await ledger.workers.register(concurrency=2)
    claimed = await ledger.queue.claim(worker, 2, batch_ids=["alerting"])
    broken = ErrorInfo(code="corrupt", message="not a PDF", retryable=False)
    await ledger.queue.complete(worker, [Outcome.failed(claimed[0], broken)])
    await ledger.queue.complete(worker, [Outcome.released(d) for d in claimed[1:]])

    async with server.client("ops") as ops:
        response = await ops.get("/metrics")
    assert response.status_code == 200
    exported = set(re.findall(r"^# TYPE (\S+) ", response.text, flags=re.M))
    assert {
        "ledger_oldest_due_document_age_seconds",
        "ledger_batch_failed_ratio",
        "ledger_batch_seconds_since_progress",
        "ledger_table_rows",
        "ledger_workers",
        "ledger_documents_in_flight",
    } <= exported
    assert 'ledger_batch_failed_ratio{batch="alerting"} 1.0' in response.text
    assert 'ledger_oldest_due_document_age_seconds{batch="alerting"}' in response.text
    assert 'ledger_table_rows{table="documents"}' in response.text

    for rule in _rules():
        names = set(METRIC.findall(str(rule["expr"])))
        assert names, f"{rule['alert']}: its expression reads no ledger metric"
        unknown = names - exported
        assert not unknown, f"{rule['alert']} reads metrics nobody exports: {unknown}"
        assert rule.get("annotations"), f"{rule['alert']} says nothing to the person paged"
