"""Search over the chunk index: ranking, query syntax, hostile input, owner scoping."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.errors import InvalidInput
from ledger.index import vectors
from ledger.index.vectors import fuse
from ledger.model import BatchSpec, SearchHit
from tests.api.test_chunks import store_vector
from tests.conftest import sql
from tests.ingest import fixtures as fx
from tests.pipeline.support import run_batch, sync_url_of

FILLER = " ".join(fx.sentences(5, 60))


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


async def corpus(led: Ledger, tmp_path: Path, owner: str | None = None) -> dict[str, str]:
    folder = tmp_path / (owner or "local")
    files = {
        # Short and about zeppelins: the best match.
        "about.txt": "Zeppelin history. The zeppelin was a rigid airship; zeppelin crews "
        "trained for years. Every zeppelin had a gondola.",
        # Long, mentions a zeppelin once in passing.
        "passing.txt": FILLER + " Once a zeppelin flew over the town. " + FILLER,
        # Accents are folded: café matches cafe.
        "cafe.md": "# Le café\n\nUn café crème, s'il vous plaît. Crème brûlée au café.",
        "other.txt": FILLER,
    }
    paths = {name: str(write(folder, name, text)) for name, text in files.items()}
    await run_batch(
        led, BatchSpec(id=f"search-{owner or 'local'}", processor="ingest", owner=owner),
        paths.values(),
    )  # fmt: skip
    return paths


async def test_ranking_puts_the_most_specific_document_first(led: Ledger, tmp_path: Path) -> None:
    paths = await corpus(led, tmp_path)
    hits = await led.index.search("zeppelin", 5)
    assert [h.source for h in hits][:2] == [paths["about.txt"], paths["passing.txt"]]
    assert hits[0].score > hits[1].score
    best = hits[0]
    assert "«" in best.snippet and "zeppelin" in best.snippet.lower()
    assert best.ordinal == 0 and best.char_start == 0 and best.char_end == len(best.text)
    assert best.page is None and best.batch_id == "search-local"
    assert all(p not in {h.source for h in hits} for p in (paths["cafe.md"], paths["other.txt"]))


async def test_query_syntax_is_the_same_on_both_backends(led: Ledger, tmp_path: Path) -> None:
    paths = await corpus(led, tmp_path)

    async def sources(query: str) -> set[str]:
        return {h.source for h in await led.index.search(query, 20)}

    assert await sources("cafe") == {paths["cafe.md"]}  # accents folded on SQLite...
    assert paths["cafe.md"] in await sources("café")  # ...and matched as written anywhere
    assert await sources('"rigid airship"') == {paths["about.txt"]}
    assert await sources('"airship rigid"') == set()  # a phrase keeps its order
    assert await sources("gondola OR brûlée") == {paths["about.txt"], paths["cafe.md"]}
    assert await sources("zeppelin -gondola") == {paths["passing.txt"]}
    assert await sources("zeppelin gondola") == {paths["about.txt"]}  # all words


HOSTILE = [
    '"unbalanced',
    "zeppelin*",
    "NEAR(zeppelin gondola)",
    "text:zeppelin",
    "zeppelin AND OR NOT",
    "^zeppelin",
    "zeppelin's (gondola) {x} [y] + - ~ & | ! :",
    "'; DROP TABLE chunks; --",
    "\x00zeppelin",
    "zeppelin\x1f\x7fgondola",
    "é" * 900,
]


async def test_hostile_queries_never_reach_the_database_as_syntax(
    led: Ledger, tmp_path: Path
) -> None:
    await corpus(led, tmp_path)
    for query in HOSTILE:
        hits = await led.index.search(query, 5)  # no exception: every term is taken literally
        assert all(isinstance(h.score, float) for h in hits), query
    assert (await led.index.search("zeppelin", 1))[0].text  # the table is still there
    assert len(await led.index.search("\x00zeppelin", 5)) == 2


async def test_queries_with_nothing_to_search_are_invalid_input(led: Ledger) -> None:
    for query in ["", "   ", "!!! ???", "-zeppelin", "OR", '""', "x" * 1001, "a " * 65]:
        with pytest.raises(InvalidInput):
            await led.index.search(query, 5)


async def test_search_is_scoped_by_owner_and_batch(led: Ledger, tmp_path: Path) -> None:
    alice = await corpus(led, tmp_path, owner="alice")
    bob = await corpus(led, tmp_path, owner="bob")
    hits = await led.index.search("zeppelin", 10, owner="alice")
    assert hits and {h.source for h in hits} <= set(alice.values())
    hits = await led.index.search("zeppelin", 10, batch_id="search-bob")
    assert hits and {h.source for h in hits} <= set(bob.values())
    assert await led.index.search("zeppelin", 10, owner="carol") == []
    with pytest.raises(InvalidInput):
        await led.index.search("zeppelin", 0)


async def test_equal_scores_rank_by_source_not_by_which_finished_first(
    led: Ledger, tmp_path: Path
) -> None:
    # Same length, same one mention: the same score. The later source is indexed first, so
    # its chunk has the lower id; the order must not depend on that.
    late = write(tmp_path / "ties", "zulu.txt", "A wombat dug a burrow by the zulu road.")
    early = write(tmp_path / "ties", "alfa.txt", "A wombat dug a burrow by the alfa road.")
    await run_batch(led, BatchSpec(id="ties-1", processor="ingest"), [str(late)])
    await run_batch(led, BatchSpec(id="ties-2", processor="ingest"), [str(early)])
    hits = await led.index.search("wombat", 5)
    assert [h.source for h in hits] == [str(early), str(late)]
    assert hits[0].score == pytest.approx(hits[1].score)
    assert hits[0].chunk_id > hits[1].chunk_id  # indexed later, ranked first


async def test_equal_vector_scores_rank_by_source_not_by_which_finished_first(
    led: Ledger, tmp_path: Path
) -> None:
    # Three sources with the same vector (the same boilerplate embedded three times), the
    # later sources indexed first. The order of the hits and which of them fit in k must
    # not depend on that; nor must the fusion of two lists whose first hits tie.
    names = ["zulu.txt", "mike.txt", "alfa.txt"]
    for number, name in enumerate(names):
        path = write(tmp_path / "vector-ties", name, f"The wombat notice, copy {name}.")
        await run_batch(led, BatchSpec(id=f"vties-{number}", processor="ingest"), [str(path)])
    url = sync_url_of(led.settings.url)
    rows = sql(url, "SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.document_id")
    by_source = {r.source: r.id for r in rows}
    for chunk_id in by_source.values():
        store_vector(url, chunk_id, [0.6, 0.8, 0.0])
    in_order = sorted(by_source)
    assert [by_source[s] for s in in_order] == sorted(by_source.values(), reverse=True)
    for k, block in ((3, 100), (1, 100), (2, 1), (1, 2)):
        hits = await vectors_nearest(led, k=k, block=block)
        assert [h.source for h in hits] == in_order[:k], (k, block)
    full_text = await led.index.search("wombat", 3)
    nearest = await vectors_nearest(led, k=3, block=100)
    # Rank 1 of one list ties with rank 1 of the other, and so on down.
    swapped = [nearest[1], nearest[0], nearest[2]]
    fused = fuse([full_text, swapped], k=3)
    assert [h.source for h in fused] == in_order


async def vectors_nearest(led: Ledger, *, k: int, block: int) -> list[SearchHit]:
    return await led.runner.read(
        lambda conn, now: vectors.nearest(
            conn, [0.6, 0.8, 0.0], model="m1", k=k, owner=None, batch_id=None, block=block
        )
    )
