"""Optional parts of the install: the default one (SQLite, the CLI, text, Markdown, HTML,
PDF and DOCX documents, ``ledger serve``) needs none of them. The PostgreSQL driver is the
``postgres`` extra; HTTP embedders and vector search (httpx, numpy) are the ``embed`` extra;
the bundled local model is ``local-embed``; PPTX, XLSX, EPUB, ODT and RTF documents are the
``office`` extra; object storage is ``s3``; watching folders (``ingest --watch``,
watchfiles) is ``watch``. A path that needs a missing one says which to install."""

from __future__ import annotations

import importlib.util

from ledger.errors import InvalidInput


class MissingExtra(InvalidInput):
    """This needs a part of ledger that is not installed."""


def require(extra: str, *modules: str, what: str) -> None:
    """Raise ``MissingExtra`` naming ``pip install 'ledger[extra]'`` when any of ``modules``
    cannot be imported (it is looked up, not imported)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(
            f"{what} needs the '{extra}' extra ({', '.join(missing)} is not installed): "
            f"pip install 'ledger[{extra}]'"
        )
