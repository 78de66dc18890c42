"""A batch's ``ingest`` options, validated: the chunking bounds, the sizing of chunks for
an embedder, the roots, the sinks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.embedders import EmbedderSpec
from ledger.errors import InvalidInput
from ledger.model import JSON
from ledger.processors.ingest.options import IngestOptions
from ledger.sinks.base import SinkProfile
from ledger.sinks.profiles import chosen_sinks

_INGEST_FIELDS = {f.name for f in dataclasses.fields(IngestOptions)}
_OWN_OPTIONS = {"reprocess", "roots", "embedder", "include_all_types", "sinks"}
MIN_CHUNK_SIZE = 64  # characters: the smallest chunk_size a batch may ask for
DEFAULT_CHUNK_SIZE = IngestOptions().chunk_size
DEFAULT_OVERLAP_RATIO = 0.15  # chunk_overlap / chunk_size when the size is derived


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """A batch's ingest options, validated."""

    ingest: IngestOptions
    reprocess: bool
    roots: tuple[str, ...]  # real paths; empty: no containment check
    embedder: EmbedderSpec | None = None
    include_all_types: bool = False  # True: no file is excluded by its name
    sinks: tuple[str, ...] = ()  # sink profiles mirroring the chunks

    @classmethod
    def from_options(
        cls,
        options: JSON,
        *,
        allowed_roots: Sequence[str] = (),
        embedders: Mapping[str, EmbedderSpec | None] | None = None,
        sinks: Mapping[str, SinkProfile] | None = None,
    ) -> IngestConfig:
        """The validated options; ``embedders`` are the profiles an ``embedder`` name may
        pick (default: the built-in ones), ``sinks`` those a ``sinks`` name may (None: the
        names are not checked)."""
        unknown = set(options) - _INGEST_FIELDS - _OWN_OPTIONS
        if unknown:
            raise InvalidInput(
                f"unknown ingest options: {', '.join(sorted(unknown))}; known: "
                + ", ".join(sorted(_INGEST_FIELDS | _OWN_OPTIONS))
            )
        reprocess = options.get("reprocess", False)
        if not isinstance(reprocess, bool):
            raise InvalidInput("option reprocess must be true or false")
        include_all_types = options.get("include_all_types", False)
        if not isinstance(include_all_types, bool):
            raise InvalidInput("option include_all_types must be true or false")
        roots = options.get("roots", [])
        if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
            raise InvalidInput("option roots must be a list of folders")
        values = {k: v for k, v in options.items() if k in _INGEST_FIELDS}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"option {key} must be an integer")
        _check_chunking(values)
        chosen = [*allowed_roots, *roots] if (allowed_roots or roots) else []
        embedder = EmbedderSpec.from_options(options.get("embedder"), embedders)
        if embedder is not None:
            values = _sized_for(embedder, values)
        chosen_sink_names = chosen_sinks(
            options.get("sinks"), sinks, has_embedder=embedder is not None
        )
        return cls(
            ingest=IngestOptions(**values),
            reprocess=reprocess,
            roots=tuple(os.path.realpath(r) for r in chosen),
            embedder=embedder,
            include_all_types=include_all_types,
            sinks=chosen_sink_names,
        )


def _check_chunking(values: dict[str, Any]) -> None:
    """Bounds on the chunking a batch may ask for: a tiny chunk size multiplies the rows one
    document makes (a 22 KB file at ``chunk_size: 1`` made 18,890 chunks)."""
    size = values.get("chunk_size", DEFAULT_CHUNK_SIZE)
    if size < MIN_CHUNK_SIZE:
        raise InvalidInput(f"option chunk_size must be at least {MIN_CHUNK_SIZE}, not {size}")
    overlap = values.get("chunk_overlap")
    if overlap is not None and not 0 <= overlap <= size // 2:
        raise InvalidInput(
            f"option chunk_overlap must be from 0 to half of chunk_size ({size // 2}), "
            f"not {overlap}"
        )


def _sized_for(embedder: EmbedderSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Chunking options that keep every chunk within the embedder's input limit: the chunk
    size defaults to ``embedder.chunk_chars`` (when that is below the usual size); a larger
    size asked for explicitly is refused rather than silently truncated by the embedder."""
    limit = embedder.chunk_chars
    size = values.get("chunk_size")
    if size is not None and size > limit:
        raise InvalidInput(
            f"chunk_size {size} is more than the embedder takes: {embedder.max_tokens} tokens "
            f"at {embedder.chars_per_token:g} characters per token is {limit} characters; "
            "lower chunk_size or set the embedder's chars_per_token"
        )
    default = IngestOptions()
    if size is None and limit < default.chunk_size:
        values = {**values, "chunk_size": limit}
        if "chunk_overlap" not in values:
            values["chunk_overlap"] = min(default.chunk_overlap, int(limit * DEFAULT_OVERLAP_RATIO))
    return values
