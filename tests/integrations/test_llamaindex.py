"""The LlamaIndex retriever (retrieve and aretrieve) and reader (lazy_load_data) against a
real ledger server: nodes with their citations, scores and stored vectors, the tenant's
only."""

from __future__ import annotations

import pytest
from llama_index.core.schema import BaseNode, MetadataMode

from ledger.client import ClientError
from ledger.integrations.llamaindex import LedgerReader, LedgerRetriever
from tests.embed.server import MODEL
from tests.integrations.conftest import CITED, LIBRARY, RIVAL, WORD, Corpus


def check_node(node: BaseNode, corpus: Corpus) -> None:
    meta = node.metadata
    assert meta["batch_id"] == LIBRARY and meta["source_name"] in CITED
    assert meta["page"] == corpus.pages[meta["chunk_id"]]
    assert node.node_id == f"ledger-chunk-{meta['chunk_id']}"
    source = node.source_node
    assert source is not None and source.node_id == f"ledger-document-{meta['document_id']}"
    # The LLM is shown where the text comes from; the embedder only the text.
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert f"source_name: {meta['source_name']}" in shown and "chunk_id" not in shown
    assert node.get_content(metadata_mode=MetadataMode.EMBED) == node.get_content()


def test_retriever_retrieve(corpus: Corpus) -> None:
    retriever = LedgerRetriever(
        base_url=corpus.server.base_url, api_key=corpus.key("acme"), similarity_top_k=3
    )
    found = retriever.retrieve(WORD)
    assert len(found) == 3
    for scored in found:
        check_node(scored.node, corpus)
        assert scored.score is not None and scored.score > 0
        assert WORD in scored.node.get_content().lower()
    assert {s.node.metadata["source_name"] for s in found} == CITED - {"library/log.txt"}
    assert corpus.key("acme") not in repr(retriever) + str(vars(retriever))


async def test_retriever_aretrieve_hybrid_and_isolation(corpus: Corpus) -> None:
    hybrid = LedgerRetriever(
        base_url=corpus.server.base_url,
        api_key=corpus.key("acme"),
        similarity_top_k=5,
        mode="hybrid",
    )
    found = await hybrid.aretrieve("quokka harbour wall")
    assert found and found[0].node.metadata["source_name"] == "library/harbour.txt"
    rival = LedgerRetriever(base_url=corpus.server.base_url, api_key=corpus.key("globex"))
    theirs = await rival.aretrieve(WORD)
    assert [s.node.metadata["batch_id"] for s in theirs] == [RIVAL]


def test_reader_streams_documents_with_vectors(corpus: Corpus) -> None:
    reader = LedgerReader(base_url=corpus.server.base_url, api_key=corpus.key("acme"))
    stream = iter(reader.lazy_load_data(LIBRARY))
    first = next(stream)
    documents = [first, *stream]
    assert [d.metadata["chunk_id"] for d in documents] == corpus.chunk_ids
    for document in documents:
        check_node(document, corpus)
        assert document.embedding is None
    with_vectors = LedgerReader(
        base_url=corpus.server.base_url, api_key=corpus.key("acme"), model=MODEL
    )
    tail = with_vectors.load_data(LIBRARY, after=corpus.chunk_ids[-3])
    assert [d.metadata["chunk_id"] for d in tail] == corpus.chunk_ids[-2:]
    assert all(d.embedding is not None and len(d.embedding) == 64 for d in tail)
    assert corpus.key("acme") not in repr(reader) + str(vars(reader))


def test_a_bad_server_url_is_refused_at_once() -> None:
    with pytest.raises(ClientError, match="not an http"):
        LedgerRetriever(base_url="127.0.0.1:8000")
    with pytest.raises(ClientError, match="not an http"):
        LedgerReader(base_url="file:///etc")
