"""Retrieval with citations from a running ledger server, through LangChain.

    pip install 'ledger[langchain]'
    export LEDGER_URL=http://127.0.0.1:8000 LEDGER_API_KEY=...   # ledger keys create --tenant me
    python examples/rag_langchain.py "where was the quokka seen?" -k 4 --mode hybrid

Prints the sources of the answer, numbered, each with its citation (file, page, character
offsets, score), then the context a language model would be given. No model is called
unless ``--llm module:function`` names one of yours: ``function(question, context) -> str``,
whose answer is printed after the sources (cite them as [1], [2] ...). ``--load BATCH``
streams a whole batch through the document loader instead (for your own vector store).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable

from pydantic import SecretStr

from ledger.extras import MissingExtra

try:
    from langchain_core.documents import Document

    from ledger.client import ClientError, cite
    from ledger.integrations.langchain import LedgerLoader, LedgerRetriever
except (ImportError, MissingExtra):
    install = "pip install 'ledger[langchain]'"
    print(f"error: this example needs the 'langchain' extra: {install}", file=sys.stderr)
    sys.exit(2)


def context_of(documents: list[Document]) -> str:
    """The numbered sources as a language model would be given them."""
    return "\n\n".join(
        f"[{n}] ({cite(d.metadata)})\n{d.page_content}" for n, d in enumerate(documents, 1)
    )


def print_sources(documents: list[Document]) -> None:
    print(f"Sources ({len(documents)}):")
    for n, document in enumerate(documents, 1):
        meta = document.metadata
        print(
            f"  [{n}] {cite(meta)}  chars {meta['char_start']}-{meta['char_end']}"
            f"  score {meta['score']:.3f}  chunk {meta['chunk_id']}"
        )
        print(f"      {' '.join(document.page_content.split())[:160]}")


def load_function(name: str) -> Callable[[str, str], str]:
    module, _, function = name.partition(":")
    found: Callable[[str, str], str] = getattr(importlib.import_module(module), function)
    return found


async def ask(args: argparse.Namespace, url: str, key: str | None) -> None:
    retriever = LedgerRetriever(
        base_url=url,
        api_key=SecretStr(key) if key else None,
        k=args.k,
        mode=args.mode,
        batch_id=args.batch,
        embedder=args.embedder,
    )
    documents = await retriever.ainvoke(args.question)
    print(f"Question: {args.question}")
    if not documents:
        print("No sources found.")
        return
    print_sources(documents)
    if args.llm:
        answer = load_function(args.llm)(args.question, context_of(documents))
        print(f"\nAnswer:\n{answer}")
    else:
        print(f"\nContext for a language model:\n{context_of(documents)}")


def load(batch: str, url: str, key: str | None) -> None:
    count = 0
    sources: dict[str, int] = {}
    for document in LedgerLoader(batch, base_url=url, api_key=key).lazy_load():
        count += 1
        name = document.metadata["source_name"]
        sources[name] = sources.get(name, 0) + 1
    print(f"Batch {batch}: {count} chunks from {len(sources)} documents")
    for name, chunks in sorted(sources.items()):
        print(f"  {name}: {chunks} chunks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ask a running ledger server for the sources of an answer, through "
        "LangChain. The server is LEDGER_URL (default http://127.0.0.1:8000), the API key "
        "LEDGER_API_KEY (none in local single-user mode)."
    )
    parser.add_argument("question", nargs="?", help="what to search for")
    parser.add_argument("-k", type=int, default=4, help="how many sources (default 4)")
    parser.add_argument("--mode", choices=["text", "vector", "hybrid"], default="text")
    parser.add_argument("--batch", help="only this batch's chunks")
    parser.add_argument("--embedder", help="vector and hybrid: the embedder profile")
    parser.add_argument("--llm", metavar="MODULE:FUNCTION", help="answer with your function")
    parser.add_argument("--load", metavar="BATCH", help="stream a batch through the loader")
    args = parser.parse_args(argv)
    if not args.question and not args.load:
        parser.error("give a question, or --load BATCH")
    url = os.environ.get("LEDGER_URL") or "http://127.0.0.1:8000"
    key = os.environ.get("LEDGER_API_KEY") or None
    try:
        if args.load:
            load(args.load, url, key)
        else:
            asyncio.run(ask(args, url, key))
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
