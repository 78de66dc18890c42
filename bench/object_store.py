"""Object storage: ingest from the store versus from local disk, and a 1 GB upload into it.

    python bench/object_store.py --corpus bench/corpus [--endpoint URL] [--upload-mb 1024]

Without ``--endpoint`` a moto server (``moto[server]``, in the ``dev`` extra) is started on
loopback; with it, the store at that URL is used with the standard AWS variables (the
bucket named by ``--bucket`` must exist; the benchmark writes below ``ledger-bench/``).

- **ingest**: the corpus is copied into the store once; then, in the same run, two fresh
  SQLite ledgers ingest it, one from the local folder, one from ``s3://bucket/prefix/``
  (submit from the paged listing; each worker read copies the object to the spool). The
  ratio store / disk is the cost of reading through the store.
- **upload**: a 1 GB file of random bytes is uploaded with the ledger's multipart upload
  (16 MiB parts, 4 in flight) in a child process, whose peak RSS is the upload's memory:
  the floor, a raw boto3 multipart upload.
- **tus upload**: the same file is uploaded with the tus protocol to a real API server
  (uvicorn, SQLite ledger, ``LEDGER_STORAGE_URL`` on the same store) in 64 MiB PATCH
  requests; the server keeps the upload in the store as it arrives (5 MiB parts, the tail in
  the ledger), then completes it and reads it back once for its SHA-256. Reported: seconds,
  throughput, the server's peak RSS, and the ratio to the floor of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from harness import Report, child_env, scratch, settings_for, sqlite_url
from ingest import corpus_files, scan
from status_scale import start_server

from ledger.app import Ledger
from ledger.db import migrate
from ledger.model import BatchSpec, SourceSpec
from ledger.processors.builtin import unchanged_skip
from ledger.storage import objects
from ledger.storage.urls import ObjectUrl
from ledger.worker.runtime import Worker

MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ledger-bench",
    "AWS_SECRET_ACCESS_KEY": "ledger-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto() -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **MOTO_CREDENTIALS},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}", proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moto server did not start")


def put_corpus(s3: Any, files: list[Path], root: Path, prefix: ObjectUrl) -> float:
    started = time.perf_counter()
    for path in files:
        key = prefix.prefix + path.relative_to(root).as_posix()
        objects.upload_file(s3, prefix.child(key), str(path))
    return time.perf_counter() - started


def object_specs(s3: Any, prefix: ObjectUrl) -> list[SourceSpec]:
    return [
        SourceSpec(
            str(info.url), size=info.size, mtime_ns=info.last_modified_ns, meta={"etag": info.etag}
        )
        for info in objects.iter_objects(s3, prefix)
    ]


async def ingest(home: Path, endpoint: str, sources: Any, concurrency: int) -> dict[str, Any]:
    settings = settings_for(home, s3_endpoint_url=endpoint)
    async with await Ledger.open(settings, migrate=True) as ledger:
        spec = BatchSpec(id="bench-objects", processor="ingest")
        started = time.perf_counter()
        await ledger.queue.submit(spec, sources(), skip_unchanged=unchanged_skip(spec))
        submitted = time.perf_counter()
        worker = Worker(ledger, batch_ids=[spec.id], concurrency=concurrency)
        await worker.run(until_complete=True)
        finished = time.perf_counter()
        batch = await ledger.reads.batch(spec.id)
    return {
        "seconds": finished - started,
        "submit_seconds": submitted - started,
        "counts": {s.value: n for s, n in batch.counts.items() if n},
    }


def upload_child(path: str, url: str, endpoint: str) -> None:
    """In a child process: upload ``path`` to ``url`` and print seconds and peak RSS."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s3 = objects.client(None, endpoint)
    started = time.perf_counter()
    info = objects.upload_file(s3, ObjectUrl.parse(url), path)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    objects.delete(s3, info.url)
    print(json.dumps({"seconds": seconds, "bytes": info.size, "rss_before_mb": before,
                      "peak_rss_mb": peak, "etag": info.etag}))  # fmt: skip


TUS_REQUEST = 64 << 20  # bytes per PATCH: a client's chunk size


def _memory_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _chunks(path: Path, start: int, size: int) -> Any:
    with open(path, "rb") as file:
        file.seek(start)
        left = size
        while left:
            block = file.read(min(1 << 20, left))
            left -= len(block)
            yield block


def tus_upload(path: Path, endpoint: str, bucket: str, home: Path) -> dict[str, Any]:
    """Upload ``path`` with tus to a real API server that keeps uploads in the store."""
    url = sqlite_url(home / "ledger.db")
    migrate.upgrade(url)
    env = child_env(
        LEDGER_HOME=str(home),
        LEDGER_DATABASE_URL=url,
        LEDGER_AUTH="off",
        LEDGER_STORAGE_URL=f"s3://{bucket}/ledger-bench-tus",
        LEDGER_S3_ENDPOINT_URL=endpoint,
        LEDGER_TUS_MAX_BYTES=str(4 << 30),
    )
    proc, base = start_server(home, env)
    try:
        size = path.stat().st_size
        tus = {"Tus-Resumable": "1.0.0"}
        made = httpx.post(
            f"{base}/api/v1/uploads",
            headers={**tus, "Upload-Length": str(size), "Upload-Metadata": "batch YmVuY2g="},
        )
        made.raise_for_status()
        location = httpx.URL(f"{base}/api/v1/uploads/").join(made.headers["Location"])
        before = _memory_mb(proc.pid, "VmHWM")
        started = time.perf_counter()
        offset = 0
        with httpx.Client(timeout=600) as client:
            while offset < size:
                step = min(TUS_REQUEST, size - offset)
                headers = {**tus, "Upload-Offset": str(offset),
                           "Content-Type": "application/offset+octet-stream"}  # fmt: skip
                body = _chunks(path, offset, step)
                answer = client.patch(location, headers=headers, content=body)
                answer.raise_for_status()
                offset = int(answer.headers["Upload-Offset"])
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "bytes": size, "rss_before_mb": before,
                "peak_rss_mb": _memory_mb(proc.pid, "VmHWM")}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_file(path: Path, megabytes: int) -> None:
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="the benchmark corpus (bench/corpus.py)")
    parser.add_argument("--endpoint", help="an S3-compatible endpoint; default: moto on loopback")
    parser.add_argument("--bucket", help="with --endpoint: an existing bucket to write to")
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--upload-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upload_child:
        upload_child(*args.upload_child)
        return 0
    moto = None
    if args.endpoint is None:
        os.environ.update(MOTO_CREDENTIALS)
        endpoint, moto = start_moto()
    else:
        endpoint = args.endpoint
    try:
        return run(args, endpoint)
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=30)


def run(args: argparse.Namespace, endpoint: str) -> int:
    s3 = objects.client(None, endpoint)
    bucket = args.bucket or f"ledger-bench-{uuid.uuid4().hex[:8]}"
    if args.bucket is None:
        s3.create_bucket(Bucket=bucket)
    base = ObjectUrl(bucket, f"ledger-bench/{uuid.uuid4().hex[:8]}/")
    params = {
        "endpoint": "moto" if args.endpoint is None else "given",
        "upload_mb": args.upload_mb,
        "corpus": str(args.corpus),
    }
    report = Report("object_store", params)
    if args.corpus is not None:
        files = corpus_files(args.corpus)
        corpus_mb = sum(p.stat().st_size for p in files) / 2**20
        prefix = base.child(base.key + "corpus/")
        put_seconds = put_corpus(s3, files, args.corpus, prefix)
        with scratch("object-store-disk") as disk_home, scratch("object-store-s3") as s3_home:
            disk = asyncio.run(ingest(disk_home, endpoint, lambda: scan(files), args.concurrency))
            store = asyncio.run(
                ingest(s3_home, endpoint, lambda: object_specs(s3, prefix), args.concurrency)
            )
        report.section(
            f"Ingest of the corpus ({len(files)} files, {corpus_mb:.1f} MB): disk vs store",
            ["source", "seconds", "submit s", "files/s", "MB/s", "counts"],
            [
                [name, r["seconds"], r["submit_seconds"], len(files) / r["seconds"],
                 corpus_mb / r["seconds"], json.dumps(r["counts"])]
                for name, r in (("local disk", disk), ("object store", store))
            ],
        )  # fmt: skip
        report.note(
            f"store / disk time ratio: {store['seconds'] / disk['seconds']:.2f}; copying the "
            f"corpus into the store took {put_seconds:.1f} s"
        )
    with scratch("object-store-upload") as tmp:
        big = tmp / "big.bin"
        make_file(big, args.upload_mb)
        url = str(base.child(base.key + "big.bin"))
        proc = subprocess.run(
            [sys.executable, __file__, "--upload-child", str(big), url, endpoint],
            env=child_env(), capture_output=True, text=True, check=True,
        )  # fmt: skip
        up = json.loads(proc.stdout.strip().splitlines()[-1])
        with scratch("object-store-tus") as server_home:
            tus = tus_upload(big, endpoint, bucket, server_home)
    report.section(
        f"Upload of a {args.upload_mb} MB file into the store",
        ["upload", "MB", "seconds", "MB/s", "RSS before upload MB", "peak RSS MB"],
        [[name, r["bytes"] / 2**20, r["seconds"], r["bytes"] / 2**20 / r["seconds"],
          r["rss_before_mb"], r["peak_rss_mb"]]
         for name, r in (("floor: boto3 multipart (child)", up), ("tus via the API server", tus))],
    )  # fmt: skip
    report.note(f"tus / floor time ratio: {tus['seconds'] / up['seconds']:.2f}")
    report.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
