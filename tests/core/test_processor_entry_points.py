"""Processors from installed ``ledger.processors`` entry points: a real distribution on the
path, named by API callers, declared by workers, built for a batch, and read once per
registry (the scan of every installed package's metadata is not repeated per request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.processors.registry import ProcessorNotAllowed, ProcessorRegistry
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker

PLUGIN = """
def shout(doc):
    return {"shouted": doc.source.upper()}

NOT_CALLABLE = 3
"""


def install(site: Path, name: str, entries: str) -> None:
    """A distribution ``name`` in ``site`` whose entry points are ``entries``."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[ledger.processors]\n{entries}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "shout_processor.py").write_text(PLUGIN)
    install(
        site,
        "shout_processor",
        "shout = shout_processor:shout\nbroken = shout_processor:NOT_CALLABLE\n"
        "absent = shout_processor_gone:process",
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_points_are_names_api_callers_may_give(site: Path) -> None:
    registry = ProcessorRegistry()
    assert {"shout", "broken", "absent"} <= set(registry.names())
    registry.check("shout")
    with pytest.raises(ProcessorNotAllowed):
        registry.check("whisper")


def test_a_registry_reads_the_installed_packages_once(site: Path) -> None:
    registry = ProcessorRegistry()
    assert not registry.allows("late")
    install(site, "late_processor", "late = shout_processor:shout")
    # Installed after this registry looked: seen by the next one (a restart), not this one.
    assert not registry.allows("late")
    assert ProcessorRegistry().allows("late")


def test_a_worker_declares_entry_points_that_load_and_leaves_out_the_rest(site: Path) -> None:
    names, failed = ProcessorRegistry().runnable()
    assert "shout" in names and "noop" in names
    assert "broken" in failed and "not callable" in failed["broken"]
    assert "absent" in failed and "shout_processor_gone" in failed["absent"]
    assert "broken" not in names and "absent" not in names


async def test_an_entry_point_processor_runs_a_batch(site: Path, ledger: Ledger) -> None:
    registry = ProcessorRegistry()
    await ledger.queue.submit(BatchSpec(id="loud", processor="shout"), [SourceSpec("/a/b")])
    stats = await Worker(ledger, concurrency=1, registry=registry).run(burst=True)
    assert stats.done == 1
    (doc,) = (await ledger.reads.documents("loud")).items
    assert doc.status is DocumentStatus.DONE
    assert doc.result == {"shouted": "/A/B"}
