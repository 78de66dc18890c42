"""Fixtures the ingest tests share with the pipeline tests."""

from tests.pipeline.conftest import led as led  # a Ledger with the real clock
