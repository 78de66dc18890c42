"""Expanding a zip, a tar or an email into member files (see :mod:`.containers`).

``expand_container`` is meant to run in a ``ProcessPool`` child, like ``process_file``: it
parses untrusted files, and the pool's timeout and memory limit are the last line of
defence. Memory stays bounded: members are copied in ``read_block_bytes`` blocks, a tar is
read as a stream, and an email (parsed whole) is capped by ``max_email_bytes``.
"""

from __future__ import annotations

import lzma
import mimetypes
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import IO, Any, BinaryIO

from ledger.errors import PermanentError, RetryableError
from ledger.processors.ingest.containers import (
    RATIO_CHECK_FROM,
    ContainerKind,
    Expansion,
    MemberSink,
    ParentRef,
    too_large,
)
from ledger.processors.ingest.options import IngestErrorCode, IngestOptions
from ledger.processors.ingest.pipeline import sha256_file


def expand_container(
    path: str, kind: str, out_dir: str, parent: ParentRef, options: IngestOptions
) -> Expansion:
    """Extract the members of the container at ``path`` into ``out_dir``.

    Raises ``PermanentError`` with ``archive_too_large`` (a bomb: nothing is kept),
    ``corrupt`` (not a readable archive or email) or ``source_missing``; a refused member
    is only reported in the expansion's ``skipped``.
    """
    sha256, size = sha256_file(path)
    expansion = Expansion(kind=kind, sha256=sha256, size=size)
    sink = MemberSink(out_dir, parent, options, expansion)
    try:
        if kind == ContainerKind.ZIP:
            _expand_zip(path, sink)
        elif kind == ContainerKind.TAR:
            _expand_tar(path, sink)
        else:
            _expand_email(path, sink)
    except BaseException:
        sink.abandon()
        raise
    return sink.finish()


def _corrupt(what: str, exc: BaseException) -> PermanentError:
    return PermanentError(IngestErrorCode.CORRUPT, f"the {what} cannot be read: {exc}")


def _read_error(exc: OSError) -> RetryableError:
    return RetryableError(IngestErrorCode.READ_ERROR, f"the file could not be read: {exc}")


def _blocks(file: IO[bytes], block: int) -> Iterator[bytes]:
    while chunk := file.read(block):
        yield chunk


# ------------------------------------------------------------------ zip


def _expand_zip(path: str, sink: MemberSink) -> None:
    options = sink.options
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) > options.max_archive_members:
                raise too_large(
                    f"the archive has {len(members)} members, more than "
                    f"{options.max_archive_members}"
                )
            # The central directory's sizes first: a bomb is refused before any inflating
            # (the sizes are enforced again while copying: zipfile stops at the declared one).
            declared = sum(m.file_size for m in members)
            if declared > options.max_archive_inflated_bytes:
                raise too_large(
                    f"the archive inflates to {declared} bytes, more than "
                    f"{options.max_archive_inflated_bytes}"
                )
            for member in members:
                _zip_member(archive, member, sink)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise _corrupt("zip archive", exc) from exc
    except FileNotFoundError as exc:
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, f"no such file: {path}") from exc


def _zip_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, sink: MemberSink) -> None:
    path = sink.admit(member.orig_filename)
    if path is None:
        return
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        sink.skip(path, "refused: symbolic link")
        return
    if member.flag_bits & 0x1:
        sink.skip(path, "refused: encrypted")
        return
    ratio = sink.options.max_archive_ratio
    if member.file_size >= RATIO_CHECK_FROM and member.file_size > ratio * max(
        member.compress_size, 1
    ):
        times = member.file_size // max(member.compress_size, 1)
        sink.skip(path, f"refused: inflates {times} times, more than {ratio}")
        return
    try:
        with archive.open(member) as file:
            sink.write(path, _blocks(file, sink.options.read_block_bytes))
    except (
        zipfile.BadZipFile, NotImplementedError, EOFError, ValueError, zlib.error,
        lzma.LZMAError, OSError,
    ) as exc:  # fmt: skip
        # One broken or unsupported member: a bad CRC, a broken deflate, bzip2 (OSError) or
        # LZMA stream, a compression method zipfile lacks. Writing its file raises
        # RetryableError, not OSError, so a full disk is not taken for a bad member.
        sink.skip(path, f"refused: unreadable ({exc})")


# ------------------------------------------------------------------ tar


class _CountingReader:
    """The compressed bytes a tar stream has read so far (for its inflation ratio)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.count += len(data)
        return data


def _link_kind(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or special file"
    if not member.isreg():
        return f"special member (type {member.type!r})"
    return None


def _expand_tar(path: str, sink: MemberSink) -> None:
    ratio = sink.options.max_archive_ratio
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed by the with below; opened apart to tell its errors)
    except FileNotFoundError as exc:
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, f"no such file: {path}") from exc
    except OSError as exc:
        raise _read_error(exc) from exc
    with raw:
        counted = _CountingReader(raw)
        try:
            # "r|*": a stream, read once front to back, any compression; members are never
            # extracted by tarfile itself, so its own link and path handling never applies.
            with tarfile.open(fileobj=counted, mode="r|*") as archive:  # type: ignore[call-overload]
                for member in archive:
                    if member.isdir():
                        continue
                    _tar_member(archive, member, sink)
                    inflated = sink.expansion.inflated
                    if inflated >= RATIO_CHECK_FROM and inflated > ratio * max(counted.count, 1):
                        raise too_large(
                            f"the archive inflates {inflated // max(counted.count, 1)} times, "
                            f"more than {ratio}"
                        )
        # A broken stream: tarfile's errors, the decompressors' own (bz2 reports OSError;
        # writing a member file raises RetryableError, not OSError).
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
            raise _corrupt("tar archive", exc) from exc


def _tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo, sink: MemberSink) -> None:
    path = sink.admit(member.name)
    if path is None:
        return
    kind = _link_kind(member)
    if kind is not None:
        sink.skip(path, f"refused: {kind}")
        return
    file = archive.extractfile(member)
    if file is None:
        sink.skip(path, "refused: no content")
        return
    with file:
        sink.write(path, _blocks(file, sink.options.read_block_bytes))


# ------------------------------------------------------------------ email


def _expand_email(path: str, sink: MemberSink) -> None:
    options = sink.options
    if sink.expansion.size > options.max_email_bytes:
        raise too_large(
            f"the email is {sink.expansion.size} bytes, more than {options.max_email_bytes}"
        )
    try:
        with open(path, "rb") as file:
            message = BytesParser(policy=policy.default).parse(file)
    except OSError as exc:
        raise _read_error(exc) from exc
    assert isinstance(message, EmailMessage)
    _email_body(message, sink)
    for number, part in enumerate(message.iter_attachments(), start=1):
        name = _attachment_name(part, number)
        if number > options.max_attachments:
            sink.skip(name, f"refused: more than {options.max_attachments} attachments")
            continue
        member = sink.admit(name)
        if member is None:
            continue
        data = _attachment_bytes(part)
        if data is None:
            sink.skip(member, "refused: no content")
            continue
        sink.write(member, [data])


def _email_body(message: EmailMessage, sink: MemberSink) -> None:
    """Write the email's body (plain text preferred, else HTML) to a file of its own: it is
    indexed as the parent's own text."""
    body = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(body, EmailMessage):
        return
    try:
        text = body.get_content()
    except (LookupError, ValueError, AssertionError):
        return  # an unknown charset or a broken part: the attachments still count
    if not isinstance(text, str) or not text.strip():
        return
    ext = ".html" if body.get_content_subtype() == "html" else ".txt"
    target = os.path.join(sink.out_dir, f"body{ext}")
    sink.write_file(target, [text.encode("utf-8")])
    sink.expansion.body_path = target


def _attachment_name(part: Message, number: int) -> str:
    name = part.get_filename()
    if isinstance(name, str) and name.strip():
        return name.strip()
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        return f"attachment-{number}.eml"
    return f"attachment-{number}{mimetypes.guess_extension(content_type) or '.bin'}"


def _attachment_bytes(part: Message) -> bytes | None:
    if part.get_content_type() == "message/rfc822":
        inner: Any = part.get_payload(0) if part.is_multipart() else None
        return inner.as_bytes() if isinstance(inner, Message) else None
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else None
