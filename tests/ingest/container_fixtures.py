"""Real archives and emails for the child-document tests, built with the standard library
around real PDF, DOCX, HTML and text members (made by :mod:`tests.ingest.fixtures`)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from email.message import EmailMessage
from pathlib import Path

from tests.ingest import fixtures as fx

# Words each member holds, so a search can find it.
MEMBER_WORDS = {
    "report.pdf": "pelican",
    "notes/minutes.docx": "walrus",
    "notes/readme.txt": "albatross",
    "site/index.html": "narwhal",
}


def member_bytes(tmp: Path) -> dict[str, bytes]:
    """Real documents, one of each kind, each holding its own word of MEMBER_WORDS."""
    tmp.mkdir(parents=True, exist_ok=True)
    made = {
        "report.pdf": fx.make_pdf(
            tmp / "m.pdf", [f"The {MEMBER_WORDS['report.pdf']} report. " + fx.sentences(1, 5)[0]]
        ),
        "notes/minutes.docx": fx.make_docx(
            tmp / "m.docx", [f"Minutes about the {MEMBER_WORDS['notes/minutes.docx']}."]
        ),
        "site/index.html": fx.make_html(
            tmp / "m.html", [f"A page on the {MEMBER_WORDS['site/index.html']}."]
        ),
    }
    data = {name: path.read_bytes() for name, path in made.items()}
    data["notes/readme.txt"] = (
        f"Plain notes on the {MEMBER_WORDS['notes/readme.txt']}.\n" * 3
    ).encode()
    return data


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def add_tar_link(path: Path, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    """Append a link member (symbolic by default) to an uncompressed tar."""
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        archive.addfile(info)


def make_eml(
    path: Path,
    body: str,
    attachments: dict[str, bytes],
    *,
    html: bool = False,
) -> Path:
    """An email with ``body`` (plain text, or HTML) and the attachments by file name."""
    message = EmailMessage()
    message["From"] = "ops@example.org"
    message["To"] = "team@example.org"
    message["Subject"] = "Quarterly files"
    if html:
        message.set_content("<html><body><p>" + body + "</p></body></html>", subtype="html")
    else:
        message.set_content(body)
    for name, data in attachments.items():
        if name.endswith(".eml"):
            inner = EmailMessage()
            inner.set_content(data.decode())
            inner["Subject"] = "forwarded"
            message.add_attachment(inner, filename=name)
            continue
        maintype, subtype = _mime(name).split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    path.write_bytes(message.as_bytes())
    return path


def _mime(name: str) -> str:
    return {
        ".pdf": "application/pdf",
        ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".html": "text/html",
        ".txt": "text/plain",
        ".png": "image/png",
    }.get(Path(name).suffix, "application/octet-stream")
