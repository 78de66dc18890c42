"""The display name of a source (ledger/index/citations.py): uploads by their file name,
server files relative to the deepest folder their batch was submitted from."""

from __future__ import annotations

from ledger.index.citations import source_name

UPLOAD = {"upload_id": "u1", "filename": "Field Report.pdf"}


def test_an_upload_is_named_by_its_file_name_never_its_storage() -> None:
    stored = "/var/ledger/storage/uploads/3f2a9c"
    assert source_name(stored, UPLOAD, ["/var/ledger/storage"]) == "Field Report.pdf"
    assert source_name(stored, {"upload_id": "u2"}) == "upload"


def test_a_server_file_is_named_relative_to_its_batchs_root() -> None:
    roots = ["/srv/docs", "/srv/docs/guide", "/srv/notes.txt", "/"]
    assert source_name("/srv/docs/a/b.md", None, roots) == "docs/a/b.md"
    assert source_name("/srv/docs/guide/intro.md", None, roots) == "guide/intro.md"  # deepest
    assert source_name("/srv/notes.txt", None, roots) == "notes.txt"  # a file given itself
    assert source_name("/srv/docs2/x.md", None, roots[:3]) == "/srv/docs2/x.md"  # not below
    assert source_name("/etc/hosts", None, ["/"]) == "etc/hosts"


def test_without_roots_the_path_is_the_name() -> None:
    assert source_name("/srv/docs/a.md", None) == "/srv/docs/a.md"
    assert source_name("/srv/docs/a.md", {"other": 1}, None) == "/srv/docs/a.md"
    assert source_name("/srv/docs/a.md", None, "not-a-list") == "/srv/docs/a.md"
