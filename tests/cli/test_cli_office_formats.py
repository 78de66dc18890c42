"""``ledger ingest`` on a folder of PPTX, XLSX, EPUB, ODT and RTF files, good and hostile:
the good ones are searchable with the slide, sheet or chapter as the hit's page, each bad
one fails permanently with its own code, and the run is not told to retry them."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli
from tests.ingest import office_fixtures as of
from tests.ingest.fixtures import sentences


def _folder(root: Path) -> dict[str, str | None]:
    """The files made in ``root`` and the error code each must end with (None: done).

    A chunk's page is the page of its first character, so a word cited on page 2 or later
    comes after more than a chunk's length (1000) of its own page's text."""
    root.mkdir(parents=True)
    filler = " ".join(sentences(5, 20))
    assert len(filler) > 1100
    deck = of.make_pptx(
        root / "deck.pptx",
        [of.Slide("Welcome", ["opening words"]),
         of.Slide("Roadmap", [filler, "axolotl migration"], notes="mention the narwhal")],
    )  # fmt: skip
    book = of.make_xlsx(
        root / "budget.xlsx",
        {"Summary": [["total", 10]], "Travel": [[filler], ["quokka flights", "=1+1"]]},
    )
    of.make_epub(
        root / "novel.epub",
        [("Dawn", [filler, "The pangolin slept."]), ("Dusk", ["The ocelot woke."])],
        spine=[1, 0],
    )
    of.make_odt(root / "minutes.odt", "<text:h>Minutes</text:h><text:p>The wombat voted.</text:p>")
    of.make_rtf(root / "memo.rtf", ["The capybara memo."])
    of.zip_bomb_of(deck, root / "bomb.pptx")
    of.write_zip(root / "locked.epub", {
        **of.epub_members([("One", ["secret"])]),
        "META-INF/encryption.xml": of.drm_encryption_xml(
            "OEBPS/text/ch00.xhtml", "http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
    })  # fmt: skip
    content = of.odt_content("<text:p>safe &i;</text:p>", prolog=of.LAUGHS_DTD)
    of.write_zip(root / "laughs.odt", of.odt_members(content))
    (root / "fake.xlsx").write_text("name,amount\ntea,3\n", encoding="utf-8")
    of.truncated(book, root / "cut.xlsx")
    return {
        "deck.pptx": None,
        "budget.xlsx": None,
        "novel.epub": None,
        "minutes.odt": None,
        "memo.rtf": None,
        "bomb.pptx": "too_large",
        "locked.epub": "encrypted",
        "laughs.odt": "unsafe_xml",
        "fake.xlsx": "unsupported_type",
        "cut.xlsx": "corrupt",
    }


def test_ingest_a_folder_of_office_files_then_search_with_citations(
    cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path / "office"
    expected = _folder(root)
    first = cli("ingest", str(root), "--json")
    assert first.code == 1, first.stderr  # some documents failed
    rows = cli.sql("SELECT source, status, error_code, json_extract(result, '$.type'), "
                   "json_extract(result, '$.pages') FROM documents")  # fmt: skip
    found = {Path(source).name: (status, code) for source, status, code, _t, _p in rows}
    assert found == {
        name: ("done", None) if code is None else ("failed", code)
        for name, code in expected.items()
    }
    kinds = {Path(source).name: (kind, pages) for source, _s, _c, kind, pages in rows}
    assert kinds["deck.pptx"] == ("pptx", 2)
    assert kinds["budget.xlsx"] == ("xlsx", 2)
    assert kinds["novel.epub"] == ("epub", 2)
    assert kinds["minutes.odt"] == ("odt", None)
    assert kinds["memo.rtf"] == ("rtf", None)
    assert first.json()["retry_may_help"] is False  # every failure is permanent

    cited = {
        "axolotl": ("deck.pptx", 2),
        "narwhal": ("deck.pptx", 2),
        "quokka": ("budget.xlsx", 2),
        "ocelot": ("novel.epub", 1),  # the spine reads Dusk first
        "pangolin": ("novel.epub", 2),
        "wombat": ("minutes.odt", None),
        "capybara": ("memo.rtf", None),
    }
    found_hits = cli("search", " OR ".join(cited), "-k", "50", "--json")
    assert found_hits.code == 0, found_hits.stderr
    hits = found_hits.json()
    for word, citation in cited.items():
        places = {(Path(h["source"]).name, h["page"]) for h in hits if word in h["text"]}
        assert places == {citation}, word
    human = cli("search", "quokka")
    assert "budget.xlsx  page 2" in human.stdout
