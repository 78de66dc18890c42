"""Object URLs and roots, without a store: parsing, containment, and how the roots settings
take s3:// entries beside folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger.errors import InvalidInput
from ledger.settings import Settings
from ledger.storage.urls import ObjectUrl, is_object_url, within_any


def test_a_root_contains_its_keys_at_a_slash_boundary_only() -> None:
    root = ObjectUrl.parse("s3://docs-bucket/team")
    assert ObjectUrl.parse("s3://docs-bucket/team/a.pdf").within(root)
    assert ObjectUrl.parse("s3://docs-bucket/team/").within(root)
    assert ObjectUrl.parse("s3://docs-bucket/team").within(root)
    assert not ObjectUrl.parse("s3://docs-bucket/team-old/a.pdf").within(root)
    assert not ObjectUrl.parse("s3://other-bucket/team/a.pdf").within(root)
    assert ObjectUrl.parse("s3://docs-bucket/any/key").within(ObjectUrl.parse("s3://docs-bucket"))
    assert within_any(ObjectUrl.parse("s3://b-2/x/y"), ["s3://b-1/x", "s3://b-2/x/"])


@pytest.mark.parametrize(
    "raw",
    ["s3://", "s3://UPPER/key", "s3://ab/key", "s3://bucket/a/../b", "s3://bucket/./a", "/tmp/x"],
)
def test_bad_object_urls_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        ObjectUrl.parse(raw)


def test_relative_keys_and_scheme_detection() -> None:
    prefix = ObjectUrl.parse("s3://bucket/in/")
    assert prefix.relative("in/sub/a.txt") == "sub/a.txt"
    assert str(prefix.child("in/a.txt")) == "s3://bucket/in/a.txt"
    assert is_object_url("S3://bucket/x") and not is_object_url("/s3://x")


def test_allowed_roots_take_urls_beside_folders(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    raw = f"{folder}{os.pathsep}s3://bucket-a/in,s3://bucket-b"
    settings = Settings(home=tmp_path, allowed_roots=raw)  # type: ignore[arg-type]
    assert settings.allowed_roots == [folder.resolve()]
    assert settings.allowed_object_roots == ["s3://bucket-a/in", "s3://bucket-b/"]
    assert settings.object_roots_for(None) == ["s3://bucket-a/in", "s3://bucket-b/"]


def test_tenant_roots_take_urls_per_tenant(tmp_path: Path) -> None:
    tenants = {"acme": [str(tmp_path), "s3://acme-docs/in"], "globex": ["s3://globex-docs"]}
    settings = Settings(home=tmp_path, tenant_roots=json.dumps(tenants))  # type: ignore[arg-type]
    assert settings.tenant_roots == {"acme": [tmp_path.resolve()], "globex": []}
    assert settings.object_roots_for("acme") == ["s3://acme-docs/in"]
    assert settings.object_roots_for("globex") == ["s3://globex-docs/"]
    assert settings.object_roots_for("initech") == []
    assert settings.object_roots_for(None) == []
    assert set(settings.all_object_roots) == {"s3://acme-docs/in", "s3://globex-docs/"}


def test_an_invalid_bucket_in_the_roots_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LEDGER_ALLOWED_ROOTS"):
        Settings(home=tmp_path, allowed_roots="s3://Not_A_Bucket/x")  # type: ignore[arg-type]


def test_the_storage_url_is_an_object_prefix(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, storage_url="s3://up-bucket/in").storage_url == (
        "s3://up-bucket/in/"
    )
    assert Settings(home=tmp_path, storage_url="").storage_url is None
    with pytest.raises(ValidationError, match="LEDGER_STORAGE_URL"):
        Settings(home=tmp_path, storage_url="/srv/uploads")
