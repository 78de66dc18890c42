"""``ledger ingest s3://bucket/prefix/`` with the real command against a real S3-compatible
server: the prefix is listed and selected like a folder, a second run finds every object
unchanged (size, last-modified time and ETag), and a replaced object is read again."""

from __future__ import annotations

from tests.cli.conftest import Cli
from tests.helpers.s3 import S3Server

BODY = "Teams that outgrow one disk keep their documents in buckets. " * 30


def test_ingest_of_a_prefix_selects_like_a_folder_and_a_rerun_reads_only_what_changed(
    cli: Cli, s3: S3Server
) -> None:
    bucket = s3.bucket()
    client = s3.client()
    keys = ["docs/a.txt", "docs/sub/b.md", "docs/sub/c.txt", "docs/.hidden.txt", "docs/x.log"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=f"{key}: {BODY}".encode())
    client.put_object(Bucket=bucket, Key="docs-old/d.txt", Body=b"not under the prefix")
    args = ("ingest", f"s3://{bucket}/docs/", "--exclude", "*.log", "--json")
    # An upload prefix of the store does not confine what the operator's own command reads.
    env = {**s3.env(), "LEDGER_STORAGE_URL": f"s3://{bucket}/uploads"}
    first = cli(*args, env=env)
    assert first.code == 0, first.stderr
    rows = cli.sql("SELECT source, status FROM documents ORDER BY source")
    assert rows == [
        (f"s3://{bucket}/docs/a.txt", "done"),
        (f"s3://{bucket}/docs/sub/b.md", "done"),
        (f"s3://{bucket}/docs/sub/c.txt", "done"),
    ]
    assert cli.scalar("SELECT count(*) FROM chunks") >= 3

    again = cli(*args, env=env)
    assert again.code == 0, again.stderr
    batch_id = first.json()["batch"]["id"]
    assert again.json()["batch"]["id"] == batch_id
    assert cli.scalar("SELECT count(*) FROM attempts") == 3  # nothing was read again

    client.put_object(Bucket=bucket, Key="docs/a.txt", Body=b"a new text for a, " * 50)
    third = cli(*args, env=env)
    assert third.code == 0, third.stderr
    assert cli.scalar("SELECT count(*) FROM attempts") == 4
    text = cli.sql(
        "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE d.source = ? AND d.superseded_by IS NULL AND d.status = 'done'",
        f"s3://{bucket}/docs/a.txt",
    )
    assert "a new text for a" in text[-1][0]


def test_a_missing_prefix_or_a_bad_url_is_a_usage_error(cli: Cli, s3: S3Server) -> None:
    bucket = s3.bucket()
    empty = cli("ingest", f"s3://{bucket}/nothing/", env=s3.env())
    assert empty.code == 2, empty.stderr
    assert "nothing to ingest" in empty.stderr and f"s3://{bucket}/nothing/" in empty.stderr
    bad = cli("ingest", "s3://Bad_Bucket/x", env=s3.env())
    assert bad.code == 2 and "valid bucket" in bad.stderr
