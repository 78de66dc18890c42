"""Expanding real archives and emails into member files: what is extracted, what is
refused and why, and the caps that make a whole archive a bomb."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from ledger.errors import PermanentError
from ledger.processors.ingest.containers import (
    ContainerKind,
    Expansion,
    ParentRef,
    container_kind,
    member_path_of,
)
from ledger.processors.ingest.expand import expand_container
from ledger.processors.ingest.options import IngestOptions, MiB
from tests.ingest import container_fixtures as cf

PARENT = ParentRef(id=7, source="/srv/in/box.zip", meta=None, depth=0)
OPTIONS = IngestOptions()


def _expand(path: Path, kind: ContainerKind, out: Path, **caps: int) -> Expansion:
    options = dataclasses.replace(OPTIONS, **caps)
    return expand_container(str(path), kind.value, str(out), PARENT, options)


def test_container_kinds_by_name() -> None:
    assert container_kind("/a/b.ZIP") is ContainerKind.ZIP
    for name in ("x.tar", "x.tar.gz", "x.tgz", "x.tar.bz2", "x.tar.xz", "x.txz"):
        assert container_kind(name) is ContainerKind.TAR, name
    assert container_kind("mail/x.eml") is ContainerKind.EMAIL
    assert container_kind("x.gz") is None and container_kind("x.docx") is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.txt", "'..' in its path"),
        ("a/../../evil.txt", "'..' in its path"),
        ("/etc/passwd", "absolute path"),
        ("C:/x.txt", "absolute path"),
        ("a\x01b.txt", "name with control characters"),
        ("bad\udcff.txt", "name that is not valid text"),
        ("./", "empty name"),
    ],
)
def test_unsafe_member_names_are_refused(name: str, why: str) -> None:
    assert member_path_of(name) == (None, why)


def test_member_paths_are_cleaned() -> None:
    assert member_path_of("./a//b/./c.txt") == ("a/b/c.txt", None)
    assert member_path_of("a\\b.txt") == ("a/b.txt", None)


def test_a_zip_of_real_documents_expands_to_files(tmp_path: Path) -> None:
    members = cf.member_bytes(tmp_path / "src")
    members["logo.png"] = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    archive = cf.make_zip(tmp_path / "box.zip", members)
    out = tmp_path / "out"
    expansion = expand_container(str(archive), "zip", str(out), PARENT, OPTIONS)
    by_path = {m.member_path: m for m in expansion.members}
    assert set(by_path) == set(cf.MEMBER_WORDS)
    for path, member in by_path.items():
        assert Path(member.source).read_bytes() == members[path]
        assert member.size == len(members[path])
        assert member.meta["member_path"] == path and member.meta["depth"] == 1
        assert member.meta["member_of"] == {"source": PARENT.source, "meta": None}
        assert Path(member.source).parent == out
    assert expansion.skipped == [{"member": "logo.png", "reason": "excluded_type: PNG image"}]
    assert sorted(os.listdir(out)) == sorted(os.path.basename(m.source) for m in by_path.values())


def test_a_retry_overwrites_and_removes_what_an_earlier_attempt_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = cf.make_zip(tmp_path / "a.zip", {f"{i}.txt": b"x" * (i + 1) for i in range(5)})
    expand_container(str(first), "zip", str(out), PARENT, OPTIONS)
    (out / "3.txt.partial").write_bytes(b"left by a killed attempt")
    second = cf.make_zip(tmp_path / "b.zip", {"only.txt": b"new"})
    expansion = expand_container(str(second), "zip", str(out), PARENT, OPTIONS)
    assert os.listdir(out) == ["0.txt"]
    assert [m.source for m in expansion.members] == [str(out / "0.txt")]
    assert (out / "0.txt").read_bytes() == b"new"


def test_tar_refuses_traversal_absolute_and_link_members(tmp_path: Path) -> None:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as archive:
        for name, data in (("../evil.txt", b"evil"), ("/etc/passwd", b"root"), ("ok.txt", b"ok")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    cf.add_tar_link(path, "link.txt", "/etc/shadow")
    cf.add_tar_link(path, "hard.txt", "ok.txt", tarfile.LNKTYPE)
    cf.add_tar_link(path, "dev.txt", "", tarfile.CHRTYPE)
    out = tmp_path / "out"
    expansion = expand_container(str(path), "tar", str(out), PARENT, OPTIONS)
    assert [m.member_path for m in expansion.members] == ["ok.txt"]
    assert {s["member"]: s["reason"] for s in expansion.skipped} == {
        "../evil.txt": "refused: '..' in its path",
        "/etc/passwd": "refused: absolute path",
        "link.txt": "refused: symbolic link",
        "hard.txt": "refused: hard link",
        "dev.txt": "refused: device or special file",
    }
    assert os.listdir(out) == ["0.txt"]
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_every_tar_compression_expands(tmp_path: Path, mode: str) -> None:
    path = cf.make_tar(tmp_path / "t.tar", {"a.md": b"# A\n\ntext\n", "b/c.txt": b"c"}, mode)
    expansion = expand_container(str(path), "tar", str(tmp_path / "o"), PARENT, OPTIONS)
    assert [m.member_path for m in expansion.members] == ["a.md", "b/c.txt"]


def test_zip_member_over_the_ratio_is_refused_the_rest_kept(tmp_path: Path) -> None:
    path = cf.make_zip(tmp_path / "r.zip", {"zeros.txt": bytes(8 * MiB), "fine.txt": b"fine"})
    expansion = expand_container(str(path), "zip", str(tmp_path / "o"), PARENT, OPTIONS)
    assert [m.member_path for m in expansion.members] == ["fine.txt"]
    (refused,) = expansion.skipped
    assert refused["member"] == "zeros.txt" and "more than 100" in refused["reason"]


def test_zip_bomb_over_the_total_fails_the_archive_and_keeps_nothing(tmp_path: Path) -> None:
    members = {f"part{i}.txt": os.urandom(600 * 1024) for i in range(4)}
    path = cf.make_zip(tmp_path / "bomb.zip", members)
    out = tmp_path / "o"
    with pytest.raises(PermanentError) as caught:
        _expand(path, ContainerKind.ZIP, out, max_archive_inflated_bytes=2 * MiB)
    assert caught.value.code == "archive_too_large"
    assert not out.exists() or os.listdir(out) == []


def test_compressed_tar_over_the_ratio_is_a_bomb(tmp_path: Path) -> None:
    path = cf.make_tar(tmp_path / "bomb.tar.gz", {"zeros.txt": bytes(32 * MiB)})
    out = tmp_path / "o"
    with pytest.raises(PermanentError) as caught:
        _expand(path, ContainerKind.TAR, out)
    assert caught.value.code == "archive_too_large" and "times" in caught.value.message
    assert not out.exists() or os.listdir(out) == []


def test_ten_thousand_members_is_over_the_member_cap(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(10_000):
            archive.writestr(f"d/{i}.txt", b"x")
    with pytest.raises(PermanentError) as caught:
        _expand(path, ContainerKind.ZIP, tmp_path / "o")
    assert caught.value.code == "archive_too_large" and "10000 members" in caught.value.message
    tar = cf.make_tar(tmp_path / "many.tar", {f"d/{i}.txt": b"x" for i in range(10_000)}, "w")
    with pytest.raises(PermanentError) as caught:
        _expand(tar, ContainerKind.TAR, tmp_path / "t")
    assert caught.value.code == "archive_too_large"
    assert not (tmp_path / "t").exists() or os.listdir(tmp_path / "t") == []


def test_encrypted_zip_members_are_refused(tmp_path: Path) -> None:
    path = cf.make_zip(tmp_path / "e.zip", {"secret.txt": b"s", "open.txt": b"o"})
    data = bytearray(path.read_bytes())
    # Set the "encrypted" flag bit of the first member, in its local and central headers.
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.index(header)
        flag_at = at + (6 if header == b"PK\x03\x04" else 8)
        data[flag_at] |= 1
    path.write_bytes(bytes(data))
    expansion = expand_container(str(path), "zip", str(tmp_path / "o"), PARENT, OPTIONS)
    assert [m.member_path for m in expansion.members] == ["open.txt"]
    assert expansion.skipped == [{"member": "secret.txt", "reason": "refused: encrypted"}]


def test_nested_containers_are_refused_past_the_depth(tmp_path: Path) -> None:
    inner = cf.make_zip(tmp_path / "inner.zip", {"a.txt": b"a"}).read_bytes()
    path = cf.make_zip(tmp_path / "outer.zip", {"inner.zip": inner, "b.txt": b"b"})
    deep = dataclasses.replace(PARENT, depth=2)
    expansion = expand_container(str(path), "zip", str(tmp_path / "o"), deep, OPTIONS)
    assert [m.member_path for m in expansion.members] == ["b.txt"]
    assert expansion.skipped == [
        {"member": "inner.zip", "reason": "refused: nested more than 3 deep"}
    ]
    shallow = expand_container(str(path), "zip", str(tmp_path / "p"), PARENT, OPTIONS)
    assert [m.member_path for m in shallow.members] == ["inner.zip", "b.txt"]
    assert shallow.members[0].meta["depth"] == 1


def test_an_email_gives_its_body_and_attachments(tmp_path: Path) -> None:
    members = cf.member_bytes(tmp_path / "src")
    attachments = {
        "report.pdf": members["report.pdf"],
        "minutes.docx": members["notes/minutes.docx"],
        "../../escape.txt": b"refused",
        "photo.png": b"\x89PNG\r\n\x1a\n",
        "forwarded.eml": b"an inner message about otters",
    }
    path = cf.make_eml(tmp_path / "m.eml", "Body text about the manatee.", attachments)
    out = tmp_path / "o"
    expansion = expand_container(str(path), "email", str(out), PARENT, OPTIONS)
    assert [m.member_path for m in expansion.members] == [
        "report.pdf",
        "minutes.docx",
        "forwarded.eml",
    ]
    assert Path(expansion.members[0].source).read_bytes() == members["report.pdf"]
    assert expansion.body_path is not None
    assert "manatee" in Path(expansion.body_path).read_text()
    reasons = {s["member"]: s["reason"] for s in expansion.skipped}
    assert reasons == {
        "../../escape.txt": "refused: '..' in its path",
        "photo.png": "excluded_type: PNG image",
    }


def test_an_email_over_the_attachment_cap_keeps_the_first(tmp_path: Path) -> None:
    attachments = {f"a{i}.txt": f"attachment {i}".encode() for i in range(5)}
    path = cf.make_eml(tmp_path / "m.eml", "<b>html body</b>", attachments, html=True)
    expansion = _expand(path, ContainerKind.EMAIL, tmp_path / "o", max_attachments=3)
    assert [m.member_path for m in expansion.members] == ["a0.txt", "a1.txt", "a2.txt"]
    assert expansion.skipped_count == 2
    assert str(expansion.body_path).endswith(".html")


def test_a_corrupt_zip_fails_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PermanentError) as caught:
        expand_container(str(path), "zip", str(tmp_path / "o"), PARENT, OPTIONS)
    assert caught.value.code == "corrupt"


def test_a_zip_member_with_broken_data_is_refused_the_rest_kept(tmp_path: Path) -> None:
    path = cf.make_zip(tmp_path / "b.zip", {"bad.txt": b"a" * 5000, "good.txt": b"g"})
    data = bytearray(path.read_bytes())
    start = data.index(b"bad.txt") + len(b"bad.txt")  # the first member's compressed data
    data[start + 2 : start + 12] = b"\xff" * 10
    path.write_bytes(bytes(data))
    expansion = expand_container(str(path), "zip", str(tmp_path / "o"), PARENT, OPTIONS)
    assert [m.member_path for m in expansion.members] == ["good.txt"]
    (refused,) = expansion.skipped
    assert refused["member"] == "bad.txt" and refused["reason"].startswith("refused: unreadable")
    assert sorted(os.listdir(tmp_path / "o")) == ["0.txt"]
