"""Embedders: text to vectors, for the ingest processor and for vector search.

``EmbedderSpec.from_options`` validates a batch's ``embedder`` option;
``build_embedder(spec)`` gives the process's shared embedder for it (``http`` for
OpenAI-compatible endpoints, ``local`` for the bundled all-MiniLM-L6-v2 model).
"""

from ledger.embedders.base import (
    LOCAL_MODEL,
    Embedder,
    EmbedderSpec,
    Matrix,
    build_embedder,
)

__all__ = ["LOCAL_MODEL", "Embedder", "EmbedderSpec", "Matrix", "build_embedder"]
