"""Retrieval with citations from a running ledger server, through LlamaIndex.

    pip install 'ledger[llamaindex]'
    export LEDGER_URL=http://127.0.0.1:8000 LEDGER_API_KEY=...   # ledger keys create --tenant me
    python examples/rag_llamaindex.py "where was the quokka seen?" -k 4 --mode hybrid

Prints the retrieved nodes, numbered, each with its citation (file, page, character
offsets, score), then the context a language model would be given (LlamaIndex's own
``MetadataMode.LLM`` rendering: the text with its source and page). No model is called
unless ``--llm module:function`` names one of yours: ``function(question, context) -> str``.
``--load BATCH`` streams a whole batch through the reader instead (to build your own index;
``--model`` adds the batch's stored vectors as the Documents' embeddings).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from ledger.extras import MissingExtra

try:
    from llama_index.core.schema import MetadataMode, NodeWithScore

    from ledger.client import ClientError, cite
    from ledger.integrations.llamaindex import LedgerReader, LedgerRetriever
except (ImportError, MissingExtra):
    install = "pip install 'ledger[llamaindex]'"
    print(f"error: this example needs the 'llamaindex' extra: {install}", file=sys.stderr)
    sys.exit(2)


def context_of(found: list[NodeWithScore]) -> str:
    """The numbered nodes as a language model is given them (source and page shown)."""
    return "\n\n".join(
        f"[{n}] {s.node.get_content(metadata_mode=MetadataMode.LLM)}"
        for n, s in enumerate(found, 1)
    )


def print_sources(found: list[NodeWithScore]) -> None:
    print(f"Sources ({len(found)}):")
    for n, scored in enumerate(found, 1):
        meta = scored.node.metadata
        print(
            f"  [{n}] {cite(meta)}  chars {meta['char_start']}-{meta['char_end']}"
            f"  score {scored.score or 0.0:.3f}  node {scored.node.node_id}"
        )
        print(f"      {' '.join(scored.node.get_content().split())[:160]}")


def answer_with(name: str) -> Callable[[str, str], str]:
    module, _, function = name.partition(":")
    found: Callable[[str, str], str] = getattr(importlib.import_module(module), function)
    return found


def ask(args: argparse.Namespace, url: str, key: str | None) -> None:
    retriever = LedgerRetriever(
        base_url=url,
        api_key=key,
        similarity_top_k=args.k,
        mode=args.mode,
        batch=args.batch,
        embedder=args.embedder,
    )
    found = retriever.retrieve(args.question)
    print(f"Question: {args.question}")
    if not found:
        print("No sources found.")
        return
    print_sources(found)
    if args.llm:
        print(f"\nAnswer:\n{answer_with(args.llm)(args.question, context_of(found))}")
    else:
        print(f"\nContext for a language model:\n{context_of(found)}")


def read(batch: str, model: str | None, url: str, key: str | None) -> None:
    count = embedded = 0
    documents: set[int] = set()
    for document in LedgerReader(base_url=url, api_key=key, model=model).lazy_load_data(batch):
        count += 1
        embedded += document.embedding is not None
        documents.add(document.metadata["document_id"])
    print(f"Batch {batch}: {count} nodes from {len(documents)} documents, {embedded} with vectors")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ask a running ledger server for the sources of an answer, through "
        "LlamaIndex. The server is LEDGER_URL (default http://127.0.0.1:8000), the API key "
        "LEDGER_API_KEY (none in local single-user mode)."
    )
    parser.add_argument("question", nargs="?", help="what to search for")
    parser.add_argument("-k", type=int, default=4, help="how many sources (default 4)")
    parser.add_argument("--mode", choices=["text", "vector", "hybrid"], default="text")
    parser.add_argument("--batch", help="only this batch's chunks")
    parser.add_argument("--embedder", help="vector and hybrid: the embedder profile")
    parser.add_argument("--llm", metavar="MODULE:FUNCTION", help="answer with your function")
    parser.add_argument("--load", metavar="BATCH", help="stream a batch through the reader")
    parser.add_argument("--model", help="with --load: attach this model's stored vectors")
    args = parser.parse_args(argv)
    if not args.question and not args.load:
        parser.error("give a question, or --load BATCH")
    url = os.environ.get("LEDGER_URL") or "http://127.0.0.1:8000"
    key = os.environ.get("LEDGER_API_KEY") or None
    try:
        if args.load:
            read(args.load, args.model, url, key)
        else:
            ask(args, url, key)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
