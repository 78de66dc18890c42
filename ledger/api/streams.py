"""Open Server-Sent Event streams: at most so many per API key at once.

Each stream holds a database poller for as long as it is open, so one key cannot open an
unbounded number of them. A slot is taken before the response starts and given back when
the stream ends however it ends: finished, failed, cancelled by a disconnect, or never
started at all (a client gone before the first byte).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from litestar.exceptions import TooManyRequestsException

T = TypeVar("T")


class StreamQuota:
    """Counts the open streams of each key."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def open_count(self, key_id: str) -> int:
        return self._open[key_id]

    def hold(self, key_id: str, stream: AsyncIterator[T]) -> AsyncIterator[T]:
        """``stream`` counted against ``key_id`` until it ends; 429 when the key is at its
        limit already."""
        if self._open[key_id] >= self.limit:
            raise TooManyRequestsException(
                detail=f"this API key has {self.limit} event streams open already "
                "(LEDGER_MAX_SSE_STREAMS_PER_KEY); close one first",
                headers={"Retry-After": "5"},
            )
        self._open[key_id] += 1
        return _Held(self, key_id, stream)

    def _release(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]


class _Held(Generic[T]):
    """An async iterator that gives its slot back exactly once when it ends or is dropped."""

    def __init__(self, quota: StreamQuota, key_id: str, stream: AsyncIterator[T]) -> None:
        self._quota = quota
        self._key_id = key_id
        self._stream = stream
        self._held = True

    def _release(self) -> None:
        if self._held:
            self._held = False
            self._quota._release(self._key_id)

    def __aiter__(self) -> _Held[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._stream.__anext__()
        except BaseException:  # the end, an error or a cancellation: the stream is over
            self._release()
            raise

    async def aclose(self) -> None:
        self._release()
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()

    def __del__(self) -> None:
        # A response that never started iterating still gives its slot back.
        self._release()
