"""The LangChain retriever (invoke and ainvoke) and loader (lazy_load and alazy_load) against
a real ledger server: Documents with their citations in the metadata, the tenant's only."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from pydantic import SecretStr, ValidationError

from ledger.client import ClientError
from ledger.integrations.langchain import LedgerLoader, LedgerRetriever
from tests.integrations.conftest import CITED, LIBRARY, RIVAL, WORD, Corpus

CITATION_KEYS = {"source_name", "page", "char_start", "char_end", "chunk_id", "ordinal",
                 "document_id", "batch_id"}  # fmt: skip


def check_document(document: Document, corpus: Corpus) -> None:
    meta = document.metadata
    assert set(meta) >= CITATION_KEYS, meta
    assert meta["batch_id"] == LIBRARY and meta["source_name"] in CITED
    assert meta["page"] == corpus.pages[meta["chunk_id"]]
    assert document.id == f"ledger-chunk-{meta['chunk_id']}"
    assert 0 <= meta["char_start"] < meta["char_end"]


async def test_retriever_invoke_and_ainvoke(corpus: Corpus) -> None:
    retriever = LedgerRetriever(
        base_url=corpus.server.base_url, api_key=SecretStr(corpus.key("acme")), k=3, mode="text"
    )
    documents = await retriever.ainvoke(WORD)
    assert len(documents) == 3
    for document in documents:
        check_document(document, corpus)
        assert WORD in document.page_content.lower()
        assert isinstance(document.metadata["score"], float)
    assert {d.metadata["source_name"] for d in documents} == CITED - {"library/log.txt"}
    hybrid = retriever.model_copy(update={"mode": "hybrid", "batch_id": LIBRARY, "k": 5})
    same = hybrid.invoke(WORD)  # the blocking call works inside a running loop too
    assert same and all(d.metadata["batch_id"] == LIBRARY for d in same)
    assert corpus.key("acme") not in repr(retriever) + str(retriever.model_dump())


def test_retriever_sync_and_tenant_isolation(corpus: Corpus) -> None:
    key = SecretStr(corpus.key("globex"))
    rival = LedgerRetriever(base_url=corpus.server.base_url, api_key=key, k=10)
    found = rival.invoke(WORD)
    assert [(d.metadata["batch_id"], d.metadata["source_name"]) for d in found] == [
        (RIVAL, "rival/secret.txt")
    ]
    assert rival.model_copy(update={"batch_id": LIBRARY}).invoke(WORD) == []


def test_loader_streams_the_batch(corpus: Corpus) -> None:
    loader = LedgerLoader(LIBRARY, base_url=corpus.server.base_url, api_key=corpus.key("acme"))
    stream = loader.lazy_load()
    first = next(stream)  # one Document at a time, not the batch in a list
    check_document(first, corpus)
    documents = [first, *stream]
    assert [d.metadata["chunk_id"] for d in documents] == corpus.chunk_ids
    for document in documents:
        check_document(document, corpus)
        assert len(document.metadata["text_sha256"]) == 64
    assert corpus.key("acme") not in repr(loader) + str(vars(loader))


async def test_loader_async_and_from_a_keyset_position(corpus: Corpus) -> None:
    after = corpus.chunk_ids[-5]
    loader = LedgerLoader(
        LIBRARY, base_url=corpus.server.base_url, api_key=corpus.key("acme"), after=after
    )
    ids = [d.metadata["chunk_id"] async for d in loader.alazy_load()]
    assert ids == corpus.chunk_ids[-4:]


def test_a_bad_server_url_is_refused_at_once(corpus: Corpus) -> None:
    with pytest.raises(ValidationError, match="not an http"):
        LedgerRetriever(base_url="ftp://127.0.0.1/")
    with pytest.raises(ClientError, match="not in the server URL"):
        LedgerLoader(LIBRARY, base_url=f"http://me:{corpus.key('acme')}@127.0.0.1:8000")
