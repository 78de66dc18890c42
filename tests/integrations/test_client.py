"""The HTTP client against a real ledger server: search with citations in every mode, the
chunk stream whole, from a keyset ``after``, in pages, and resumed after cuts made by a
proxy; errors by status (401, 403, 404, 422, 429 and 503 with ``Retry-After`` honoured or
refused when too long; the server's own rate limit); one tenant never sees another's; the
key never shows."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.client import (
    AsyncLedgerClient,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    LedgerClient,
    NotFound,
    RateLimited,
    RetryRules,
    StreamBroken,
    Unauthorized,
    Unavailable,
)
from ledger.client.records import Chunk, SearchHit
from tests.api.conftest import start_server, stop_server
from tests.helpers.server import free_port
from tests.integrations.conftest import CITED, LIBRARY, RIVAL, WORD, Corpus
from tests.integrations.proxy import FaultProxy

FAST = RetryRules(retries=2, max_retry_wait=5.0)


@pytest.fixture
def proxy(corpus: Corpus) -> Iterator[FaultProxy]:
    port = int(corpus.server.base_url.rsplit(":", 1)[1])
    fault_proxy = FaultProxy(port).start()
    yield fault_proxy
    fault_proxy.close()


def check_citation(hit: SearchHit | Chunk, corpus: Corpus) -> None:
    assert hit.batch_id == LIBRARY
    assert hit.source_name in CITED, hit
    assert hit.page == corpus.pages[hit.chunk_id]
    assert (hit.page is not None) == hit.source_name.endswith(".pdf")
    assert 0 <= hit.char_start < hit.char_end
    assert hit.document_id > 0


@pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
def test_search_cites_every_hit(corpus: Corpus, mode: str) -> None:
    with LedgerClient(corpus.server.base_url, corpus.key("acme")) as client:
        hits = client.search(WORD, mode=mode, k=10)
    assert hits, mode
    for hit in hits:
        check_citation(hit, corpus)
        assert hit.citation()["source_name"] == hit.source_name
    if mode == "text":  # full text: exactly the three files that hold the word
        assert {h.source_name for h in hits} == CITED - {"library/log.txt"}
        pdf = [h for h in hits if h.source_name == "library/survey.pdf"]
        assert 2 in {h.page for h in pdf}  # the word is on the second page
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_async_search_matches_sync(corpus: Corpus) -> None:
    async with AsyncLedgerClient(corpus.server.base_url, corpus.key("acme")) as client:
        hits = await client.search(WORD, k=5, batch=LIBRARY)
    with LedgerClient(corpus.server.base_url, corpus.key("acme")) as sync_client:
        assert [h.chunk_id for h in sync_client.search(WORD, k=5)] == [h.chunk_id for h in hits]


def test_iter_chunks_streams_the_whole_batch(corpus: Corpus) -> None:
    with LedgerClient(corpus.server.base_url, corpus.key("acme")) as client:
        chunks = list(client.iter_chunks(LIBRARY))
        assert [c.chunk_id for c in chunks] == corpus.chunk_ids
        for chunk in chunks:
            check_citation(chunk, corpus)
            assert chunk.vectors is None
        # From a keyset position: exactly the rest.
        middle = corpus.chunk_ids[len(corpus.chunk_ids) // 2]
        rest = [c.chunk_id for c in client.iter_chunks(LIBRARY, after=middle)]
        assert rest == [i for i in corpus.chunk_ids if i > middle]
        # In requests of 7 chunks, following each page's next_after.
        paged = [c.chunk_id for c in client.iter_chunks(LIBRARY, page_size=7)]
        assert paged == corpus.chunk_ids
        with_vectors = next(iter(client.iter_chunks(LIBRARY, vectors=True)))
        assert with_vectors.vectors and all(len(v) == 64 for v in with_vectors.vectors.values())


async def test_async_iter_chunks(corpus: Corpus) -> None:
    async with AsyncLedgerClient(corpus.server.base_url, corpus.key("acme")) as client:
        ids = [c.chunk_id async for c in client.iter_chunks(LIBRARY, page_size=11)]
    assert ids == corpus.chunk_ids


def test_cut_streams_resume_after_the_last_chunk(corpus: Corpus, proxy: FaultProxy) -> None:
    assert len(corpus.chunk_ids) > 20  # several cuts land mid-stream
    proxy.faults.extend([("cut", 3000), ("cut", 4000), ("cut", 2500)])
    with LedgerClient(proxy.base_url, corpus.key("acme"), rules=FAST) as client:
        chunks = list(client.iter_chunks(LIBRARY))
    assert [c.chunk_id for c in chunks] == corpus.chunk_ids  # nothing lost, nothing twice
    assert proxy.connections == 4


async def test_async_cut_stream_resumes(corpus: Corpus, proxy: FaultProxy) -> None:
    proxy.faults.extend([("cut", 3500), ("cut", 3000)])
    async with AsyncLedgerClient(proxy.base_url, corpus.key("acme"), rules=FAST) as client:
        ids = [c.chunk_id async for c in client.iter_chunks(LIBRARY)]
    assert ids == corpus.chunk_ids
    assert proxy.connections == 3


def head_length(corpus: Corpus, path: str) -> int:
    """How many bytes the server's answer to ``GET path`` spends on its status and headers."""
    port = int(corpus.server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Authorization: Bearer {corpus.key('acme')}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = conn.recv(65536)
            assert data, answer
            answer += data
    return answer.index(b"\r\n\r\n") + 4


def test_cuts_without_progress_give_up_saying_where(corpus: Corpus, proxy: FaultProxy) -> None:
    # Each answer is cut a few bytes into its body: before the first whole line.
    cut = head_length(corpus, f"/api/v1/batches/{LIBRARY}/chunks") + 8
    proxy.faults.extend([("cut", 4000)] + [("cut", cut)] * 3)
    rules = RetryRules(retries=2, max_retry_wait=5.0, max_resumes=2)
    received: list[int] = []
    with LedgerClient(proxy.base_url, corpus.key("acme"), rules=rules) as client:
        with pytest.raises(StreamBroken, match="cut 3 times") as broken:
            received.extend(c.chunk_id for c in client.iter_chunks(LIBRARY))
        assert received and received == corpus.chunk_ids[: len(received)]
        assert f"resume with after={received[-1]}" in str(broken.value)
        rest = [c.chunk_id for c in client.iter_chunks(LIBRARY, after=received[-1])]
    assert received + rest == corpus.chunk_ids
    assert proxy.connections == 5


def test_retry_after_is_honoured(corpus: Corpus, proxy: FaultProxy) -> None:
    proxy.faults.extend([("status", 503, 1), ("status", 429, 1)])
    with LedgerClient(proxy.base_url, corpus.key("acme"), rules=FAST) as client:
        hits = client.search(WORD)
    assert {h.source_name for h in hits} >= {"library/harbour.txt"}
    assert proxy.connections == 3


def test_too_long_a_wait_or_too_many_is_an_error(corpus: Corpus, proxy: FaultProxy) -> None:
    proxy.faults.append(("status", 503, 120))
    with LedgerClient(proxy.base_url, corpus.key("acme"), rules=FAST) as client:
        with pytest.raises(Unavailable, match="wait 120 s") as unavailable:
            client.search(WORD)
        assert unavailable.value.retry_after == 120 and unavailable.value.status == 503
        assert proxy.connections == 1  # not asked again: the wait is the caller's choice
        proxy.faults.extend([("status", 429, 0)] * 3)
        with pytest.raises(RateLimited, match="after 3 tries"):
            client.search(WORD)
        proxy.faults.append(("status", 403, None))
        with pytest.raises(Forbidden):
            client.search(WORD)


def test_errors_by_status(corpus: Corpus) -> None:
    url = corpus.server.base_url
    with LedgerClient(url, "lk_not_a_key") as client, pytest.raises(Unauthorized):
        client.search(WORD)
    with LedgerClient(url) as client, pytest.raises(Unauthorized):
        client.search(WORD)  # keys are required: no key is not local mode here
    with LedgerClient(url, corpus.key("acme")) as client:
        with pytest.raises(NotFound):
            list(client.iter_chunks("no-such-batch"))
        with pytest.raises(InvalidRequest):
            client.search(WORD, mode="fuzzy")
        with pytest.raises(InvalidRequest):
            client.search(WORD, mode="vector", embedder="not-a-profile")
    nobody = LedgerClient(f"http://127.0.0.1:{free_port()}", rules=RetryRules(retries=1))
    with nobody, pytest.raises(ConnectionFailed):
        nobody.search(WORD)


def test_a_tenant_sees_nothing_of_another(corpus: Corpus) -> None:
    with LedgerClient(corpus.server.base_url, corpus.key("globex")) as client:
        hits = client.search(WORD, k=100)
        assert {(h.batch_id, h.source_name) for h in hits} == {(RIVAL, "rival/secret.txt")}
        assert client.search(WORD, k=100, batch=LIBRARY) == []
        with pytest.raises(NotFound):
            list(client.iter_chunks(LIBRARY))
    with LedgerClient(corpus.server.base_url, corpus.key("acme")) as client:
        assert RIVAL not in {h.batch_id for h in client.search(WORD, k=100)}


def test_the_key_never_shows(corpus: Corpus, caplog: pytest.LogCaptureFixture) -> None:
    key = corpus.key("acme")
    caplog.set_level(logging.DEBUG)
    with LedgerClient(corpus.server.base_url, key) as client:
        client.search(WORD)
        list(client.iter_chunks(LIBRARY, page_size=50))
        assert key not in repr(client)
        with pytest.raises(NotFound) as missing:
            list(client.iter_chunks("no-such-batch"))
    assert key not in str(missing.value) and key not in repr(missing.value)
    assert caplog.records and not [r for r in caplog.records if key in r.getMessage()]
    with pytest.raises(Exception, match="not in the server URL"):
        LedgerClient(f"http://user:{key}@127.0.0.1:1")


def test_the_servers_own_rate_limit(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, {"LEDGER_AUTH": "on", "LEDGER_RATE_LIMIT_PER_MINUTE": "2"}, tenants=("acme",)
    )
    try:
        with LedgerClient(server.base_url, server.keys["acme"], rules=FAST) as client:
            assert client.search(WORD) == [] and client.search(WORD) == []
            # Litestar asks for the rest of the minute (RateLimit-Reset): longer than this
            # client waits, so the caller hears it at once, with the wait the server asked for.
            with pytest.raises(RateLimited) as limited:
                client.search(WORD)
    finally:
        stop_server(server)
    assert limited.value.status == 429
    assert limited.value.retry_after is not None and limited.value.retry_after > FAST.max_retry_wait
