"""What an embedder is, how a batch asks for one, and the one place that builds them.

A batch chooses its embedder in the ingest options by profile name, ``{"embedder": "name"}``:
the operator defines the profiles (``LEDGER_EMBEDDERS``, see ``profiles.py``), so an API
caller never chooses where document text goes nor which secret goes with it. ``local`` (the
bundled model) is always available. The operator's CLI may also give inline settings::

    {"embedder": {"kind": "openai", "base_url": "http://127.0.0.1:8080/v1",
                  "model": "bge-small", "batch_size": 64, "api_key_env": "OPENAI_API_KEY",
                  "timeout": 30, "concurrency": 4, "max_tokens": 512}}
    {"embedder": {"kind": "local"}}
    {"embedder": {"kind": "none"}}          # the default: full-text search only

Each embedder declares its model name (the identity vectors are stored and cached under),
its dimension (when known before the first call) and its input limit in tokens, from which
the chunk size is derived (``EmbedderSpec.chunk_chars``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from ledger.errors import InvalidInput
from ledger.extras import require

# numpy loads with the first embedder built: a batch without one (the default) never needs it.
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

KINDS = ("none", "openai", "local")
LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_DIMENSION = 384
LOCAL_MAX_TOKENS = 256
# Characters per token assumed when sizing chunks for an embedder. English prose runs at
# about 4.5 characters per WordPiece/BPE token; code, numbers and tables at 2.5-3.5; CJK at
# about 1. 3.0 keeps prose and most code under the limit; the local model also measures
# every text with its tokenizer and splits what is still too long (see local.py).
DEFAULT_CHARS_PER_TOKEN = 3.0
SPECIAL_TOKENS = 2  # [CLS] and [SEP] (or BOS/EOS) count against the limit

Matrix: TypeAlias = "npt.NDArray[np.float32]"


@dataclasses.dataclass(frozen=True)
class EmbedderSpec:
    """A batch's embedder options, validated."""

    kind: str
    model: str
    base_url: str | None = None
    batch_size: int = 64
    api_key_env: str | None = None
    # Only operator profiles set this (never batch options): a file holding the API key.
    api_key_file: str | None = None
    timeout: float = 30.0
    concurrency: int = 4
    dimension: int | None = None
    max_tokens: int = 512
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN

    @property
    def chunk_chars(self) -> int:
        """The largest chunk (characters) this embedder takes without truncation, at
        ``chars_per_token`` characters per token."""
        return max(1, math.floor((self.max_tokens - SPECIAL_TOKENS) * self.chars_per_token))

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_options(
        cls, value: Any, profiles: Mapping[str, EmbedderSpec | None] | None = None
    ) -> EmbedderSpec | None:
        """The spec of a batch's ``embedder`` option (None: no embedder): a profile name
        looked up in ``profiles``, or inline settings (which only the operator's CLI may
        give). Raises :class:`InvalidInput` naming the offending field."""
        if value is None:
            return None
        if isinstance(value, str):
            known = profiles if profiles is not None else {"local": LOCAL_PROFILE, "none": None}
            if value not in known:
                raise UnknownProfile(
                    f"unknown embedder profile {value!r}; the operator defines profiles with "
                    f"LEDGER_EMBEDDERS (known: {', '.join(sorted(known)) or 'none'})"
                )
            return known[value]
        if not isinstance(value, dict):
            raise InvalidInput("option embedder must be an object with a kind")
        kind = value.get("kind", "none")
        if kind not in KINDS:
            raise InvalidInput(f"embedder kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if kind == "none":
            _known(value, {"kind"})
            return None
        common = {"kind", "batch_size", "max_tokens", "chars_per_token"}
        if kind == "local":
            _known(value, common)
            return cls(
                kind="local",
                model=LOCAL_MODEL,
                batch_size=_int(value, "batch_size", 16, 1, 1024),
                dimension=LOCAL_DIMENSION,
                max_tokens=_int(value, "max_tokens", LOCAL_MAX_TOKENS, 8, LOCAL_MAX_TOKENS),
                chars_per_token=_float(value, "chars_per_token", DEFAULT_CHARS_PER_TOKEN),
            )
        _known(
            value,
            common | {"base_url", "model", "api_key_env", "timeout", "concurrency", "dimension"},
        )
        base_url = value.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInput("embedder base_url must be an http:// or https:// URL")
        model = value.get("model")
        if not isinstance(model, str) or not model or len(model) > 200:
            raise InvalidInput("embedder model must be a name of 1 to 200 characters")
        api_key_env = value.get("api_key_env")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise InvalidInput("embedder api_key_env must name an environment variable")
        dimension = value.get("dimension")
        if dimension is not None:
            dimension = _int(value, "dimension", 0, 1, 65_536)
        return cls(
            kind="openai",
            model=model,
            base_url=base_url.rstrip("/"),
            batch_size=_int(value, "batch_size", 64, 1, 4096),
            api_key_env=api_key_env,
            timeout=_float(value, "timeout", 30.0),
            concurrency=_int(value, "concurrency", 4, 1, 1024),
            dimension=dimension,
            max_tokens=_int(value, "max_tokens", 512, 8, 1_000_000),
            chars_per_token=_float(value, "chars_per_token", DEFAULT_CHARS_PER_TOKEN),
        )


class UnknownProfile(InvalidInput):
    """No embedder profile of that name is defined."""


LOCAL_PROFILE = EmbedderSpec(
    kind="local",
    model=LOCAL_MODEL,
    batch_size=16,
    dimension=LOCAL_DIMENSION,
    max_tokens=LOCAL_MAX_TOKENS,
)


def _known(value: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(value) - allowed
    if unknown:
        raise InvalidInput(
            f"unknown embedder options: {', '.join(sorted(unknown))}; known for kind "
            f"{value.get('kind')}: {', '.join(sorted(allowed))}"
        )


def _int(value: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    got = value.get(name, default)
    if not isinstance(got, int) or isinstance(got, bool) or not lo <= got <= hi:
        raise InvalidInput(f"embedder {name} must be an integer from {lo} to {hi}")
    return got


def _float(value: dict[str, Any], name: str, default: float) -> float:
    got = value.get(name, default)
    if not isinstance(got, int | float) or isinstance(got, bool) or not 0 < got <= 1e6:
        raise InvalidInput(f"embedder {name} must be a positive number")
    return float(got)


class Embedder(Protocol):
    """Turns texts into vectors. ``embed`` returns one row per text, in order; it raises
    ``RetryableError`` / ``PermanentError`` (with stable codes) when it cannot."""

    spec: EmbedderSpec

    @property
    def model(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> Matrix: ...


_BUILT: dict[str, Embedder] = {}


def build_embedder(spec: EmbedderSpec) -> Embedder:
    """The embedder for ``spec``, built once per process and shared (a local model is
    loaded once; HTTP embedders of one endpoint share its concurrency limit anyway)."""
    key = spec.key()
    embedder = _BUILT.get(key)
    if embedder is None:
        if spec.kind == "openai":
            require("embed", "httpx", "numpy", what="an OpenAI-compatible embedder")
            from ledger.embedders.http import HttpEmbedder

            if spec.api_key_env is not None and not os.environ.get(spec.api_key_env):
                raise InvalidInput(f"the embedder's API key variable {spec.api_key_env} is not set")
            embedder = HttpEmbedder(spec)
        elif spec.kind == "local":
            require("local-embed", "numpy", what="the local embedder")
            from ledger.embedders.local import LocalEmbedder

            embedder = LocalEmbedder(spec)
        else:
            raise InvalidInput(f"no embedder of kind {spec.kind!r}")
        _BUILT[key] = embedder
    return embedder
