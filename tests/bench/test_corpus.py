"""The corpus builder on a small fake source tree: selection, manifest, determinism, idempotence."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import docx
import pytest
from fpdf import FPDF

ROOT = Path(__file__).resolve().parents[2]


def load_corpus() -> ModuleType:
    # bench/ is a scripts folder, not a package: load the module from its file.
    spec = importlib.util.spec_from_file_location("bench_corpus", ROOT / "bench" / "corpus.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


corpus = load_corpus()

PROSE = "The ledger records every document it ingests and resumes after a crash. " * 16


def html_page(i: int) -> str:
    rows = "".join(f"<tr><td>key {r}</td><td>value {r * i}</td></tr>" for r in range(4))
    return (
        f"<html><head><title>Page {i}</title></head><body><div class='body'>"
        f"<h1>Page {i}</h1><p>{PROSE}</p><h2>Details</h2><ul><li>first {i}</li><li>second</li></ul>"
        f"<pre>run --page {i}\n  done</pre><table><tr><th>Key</th><th>Value</th></tr>{rows}</table>"
        f"<p>{PROSE[::-1]}</p></div><script>var x = {i};</script></body></html>"
    )


def make_pdf(path: Path, i: int) -> None:
    pdf = FPDF()
    pdf.set_creation_date(corpus.FIXED_TIME)
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, f"Manual {i}. {PROSE}")
    pdf.output(str(path))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    docs = src / "pkg-doc"
    (docs / "html").mkdir(parents=True)
    for i in range(20):
        (docs / "html" / f"page {i}.html").write_text(html_page(i))
    for i in range(5):
        make_pdf(docs / f"manual-{i}.pdf", i)
    (docs / "alias.pdf").symlink_to(docs / "manual-0.pdf")  # same file: must appear once
    (docs / "README.md").write_text(f"# Readme\n\n{PROSE}\n")
    for i in range(3):
        (docs / f"notes-{i}.txt").write_text(f"Notes {i}\n{PROSE}\n")
    changelog = f"pkg (1.0) unstable\n{PROSE}".encode()
    (docs / "changelog.Debian.gz").write_bytes(gzip.compress(changelog))
    (docs / "tiny.html").write_text("<p>stub</p>")  # under the size floor
    (docs / "LICENSE.txt").write_text(PROSE)  # licence boilerplate is skipped
    (docs / "app.js").write_text(PROSE)  # not a document type
    meta = src / "pkg-1.0.dist-info"
    meta.mkdir()
    (meta / "METADATA.txt").write_text(PROSE)
    return src


def run(out: Path, source: Path, *extra: str) -> int:
    args = [str(out), "--source-dirs", str(source), "--min-files", "20", "--min-mb", "0", *extra]
    return int(corpus.main(args))


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return data


def test_builds_expected_mix_and_manifest(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "corpus"
    assert run(out, source) == 0
    files = manifest(out)["files"]
    counts: dict[str, int] = {}
    for entry in files:
        counts[entry["type"]] = counts.get(entry["type"], 0) + 1
        path = out / entry["path"]
        assert path.is_file()
        assert not path.is_symlink()
        assert path.suffix == f".{entry['type']}"
        assert path.stat().st_size == entry["bytes"]
        assert corpus.sha256_file(path) == entry["sha256"]
    assert counts == corpus.quotas_for(20, 1.0)  # html 12, pdf 3, docx 2, md 2, txt 2
    origins = {Path(e["origin"]).name for e in files}
    assert not origins & {"tiny.html", "LICENSE.txt", "app.js", "METADATA.txt", "alias.pdf"}
    methods = {e["method"] for e in files}
    assert {"html-to-docx", "html-to-md"} <= methods  # md fell back to converted HTML
    doc = docx.Document(str(next((out / "docx").iterdir())))
    assert doc.tables
    assert any(p.style is not None and p.style.name.startswith("Heading") for p in doc.paragraphs)


def test_deterministic_and_idempotent(tmp_path: Path, source: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(first, source) == 0
    assert run(second, source) == 0
    assert manifest(first) == manifest(second)
    for entry in manifest(first)["files"]:
        assert (first / entry["path"]).read_bytes() == (second / entry["path"]).read_bytes()

    before = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    assert run(first, source) == 0
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == before


def test_shrinking_removes_stale_files(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "corpus"
    assert run(out, source) == 0
    assert run(out, source, "--min-files", "10") == 0
    listed = {e["path"] for e in manifest(out)["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == listed | {"manifest.json"}


def test_resumes_interrupted_build(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "corpus"
    assert run(out, source) == 0
    expected = manifest(out)
    # Simulate a crash mid-way through the first build: no manifest, a lost file, a temp file.
    (out / "manifest.json").unlink()
    (out / expected["files"][0]["path"]).unlink()
    (out / "html" / ".partial.html.tmp").write_bytes(b"half")
    assert run(out, source) == 0
    assert manifest(out) == expected
    assert not list(out.rglob("*.tmp"))


def test_not_enough_sources_names_packages(
    tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path / "big", source, "--min-files", "1000") == 1
    err = capsys.readouterr().err
    assert "not enough source documents" in err
    assert "apt-get install" in err


def test_refuses_foreign_directory(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")
    assert run(out, source) == 1
    assert (out / "keep.txt").read_text() == "not ours"
