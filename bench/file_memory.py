"""Memory and speed of a large file upload: a ~100 MB NDJSON file (and its gzip variant) is
uploaded to the embedded COS through a presigned PUT, then ingested by `process_upload` with
the real engine (`validate_records` + `apply_batch`, one transaction per chunk) in a fresh
subprocess, which reports its own peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`), the
RSS right after its imports, and records/s.

Target (issue 3): a 100 MB file is ingested in under 200 MB RSS. The file is generated on disk
and streamed to COS, so only the child's figures matter.

    python bench/file_memory.py [--mb 100] [--chunk 5000] [--variants plain,gzip]
                                [--database-url URL] [--json] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for extra in (REPO_ROOT / "layers" / "common", REPO_ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TARGET_RSS_MB = 200.0
SOURCE = "bench"
ENTITY = "bench_files"
BASE_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
CITIES = ("Beijing", "Shanghai", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan")


# --- the child: one upload, measured ----------------------------------------------------------


def child(object_key: str, chunk: int) -> None:
    """Runs in a fresh interpreter; prints one JSON line with its figures."""
    import resource

    from hybrid.db import Transaction, database
    from hybrid.ingest import uploads
    from hybrid.ingest.engine import BatchOutcome, apply_batch
    from hybrid.ingest.models import IncomingRecord, SourceConfig
    from hybrid.storage.cos import CosObjectStore

    db = database(os.environ["DATABASE_URL"])
    store = CosObjectStore(
        region=os.environ["COS_REGION"],
        bucket=os.environ["COS_BUCKET"],
        secret_id=os.environ["COS_SECRET_ID"],
        secret_key=os.environ["COS_SECRET_KEY"],
        endpoint_url=os.environ["COS_ENDPOINT_URL"],
    )

    def apply(
        tx: Transaction, upload: uploads.Upload, records: list[tuple[int, IncomingRecord]]
    ) -> BatchOutcome:
        return apply_batch(
            tx,
            tenant_id=upload.tenant_id,
            entity=upload.entity,
            source=SourceConfig(upload.source, 0, "timestamp_priority"),
            strategy="timestamp_priority",
            records=records,
            receipt_id=upload.receipt_id or upload.id,
        )

    # Warm the lazy imports (pydantic models, pg8000, the COS SDK) before the baseline figure.
    with db.transaction() as tx:
        tx.scalar("SELECT 1")
    from hybrid.ingest.models import validate_records

    validate_records([])
    import_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    upload = uploads.process_upload(db, store, object_key, apply_chunk=apply, chunk_size=chunk)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "status": upload.status,
                "failure": upload.failure,
                "rows": upload.rows_done,
                "accepted": upload.accepted,
                "rejected": upload.rejected,
                "inserted": upload.outcome.get("inserted", 0),
                "bytes_read": upload.bytes_read,
                "seconds": seconds,
                "rows_per_s": upload.rows_done / seconds if seconds else 0.0,
                "import_rss_mb": import_rss_kb / 1024,
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )


# --- the parent: stack, file, upload, child ---------------------------------------------------


def records(target_bytes: int) -> Iterator[bytes]:
    """NDJSON lines of about 200 bytes, unique keys, until `target_bytes` are produced."""
    written = 0
    i = 0
    while written < target_bytes:
        line = json.dumps(
            {
                "key": f"cust-{i:08d}",
                "op": "upsert",
                "updated_at": (BASE_TIME + timedelta(seconds=i)).isoformat(),
                "data": {
                    "name": f"Customer {i}",
                    "city": CITIES[i % len(CITIES)],
                    "tier": i % 5,
                    "balance": round(i * 1.37, 2),
                    "note": "x" * (20 + i % 30),
                },
            },
            ensure_ascii=False,
        ).encode()
        yield line + b"\n"
        written += len(line) + 1
        i += 1


def write_files(directory: Path, megabytes: int) -> tuple[Path, Path, int]:
    plain, packed = directory / "records.ndjson", directory / "records.ndjson.gz"
    count = 0
    with plain.open("wb") as out, gzip.open(packed, "wb", compresslevel=6) as gz:
        for line in records(megabytes * 1024 * 1024):
            out.write(line)
            gz.write(line)
            count += 1
    return plain, packed, count


@contextlib.contextmanager
def stack_env(database_url: str | None) -> Iterator[dict[str, str]]:
    """PostgreSQL (the given one or embedded) and the embedded COS, migrated."""
    from infra.migrate import upgrade
    from local_emulator.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="bench-files-") as data_dir:
        services = ["cos"] if database_url else ["postgres", "cos"]
        stack = LocalStack(Path(data_dir), services=services)
        stack.start_services()
        try:
            env = {
                "DATABASE_URL": database_url or stack.database_url,
                **stack.cos_endpoint.env(),
            }
            upgrade(env["DATABASE_URL"])
            yield env
        finally:
            stack.stop()


def upload_file(env: dict[str, str], path: Path, compression: str) -> str:
    """A tenant, an upload and the file PUT to its presigned URL; the object key."""
    import requests

    from hybrid.db import database
    from hybrid.ingest import uploads
    from hybrid.storage.cos import CosObjectStore
    from hybrid.tenants import create_tenant

    with database(env["DATABASE_URL"]).transaction() as tx:
        tenant = create_tenant(tx, f"bench-files-{uuid.uuid4().hex[:8]}")
        upload = uploads.create_upload(
            tx,
            tenant_id=tenant.id,
            source=SOURCE,
            entity=ENTITY,
            filename=path.name,
            fmt="ndjson",
            compression=compression,
            size=path.stat().st_size,
            conflict_strategy=None,
            actor="bench",
        )
    store = CosObjectStore(
        region=env["COS_REGION"],
        bucket=env["COS_BUCKET"],
        secret_id=env["COS_SECRET_ID"],
        secret_key=env["COS_SECRET_KEY"],
        endpoint_url=env["COS_ENDPOINT_URL"],
    )
    url = store.presign_put(upload.object_key, expires_in=3600)
    with path.open("rb") as body:  # streamed by requests, never read whole
        response = requests.put(url, data=body, timeout=600)
    response.raise_for_status()
    return upload.object_key


def run_child(env: dict[str, str], object_key: str, chunk: int) -> dict[str, Any]:
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    completed = subprocess.run(
        [sys.executable, __file__, "--child", object_key, "--chunk", str(chunk)],
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"child failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the NDJSON file")
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--variants", default="plain,gzip")
    parser.add_argument("--database-url", help="a PostgreSQL to use instead of an embedded one")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", metavar="OBJECT_KEY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.chunk)
        return 0

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-files-data-") as tmp:
        plain, packed, count = write_files(Path(tmp), args.mb)
        sizes = {"plain": plain.stat().st_size, "gzip": packed.stat().st_size}
        print(
            f"file: {count:,} records, {sizes['plain'] / 2**20:.1f} MiB NDJSON, "
            f"{sizes['gzip'] / 2**20:.1f} MiB gzipped",
            file=sys.stderr,
        )
        with stack_env(args.database_url) as env:
            for variant in variants:
                path, compression = (packed, "gzip") if variant == "gzip" else (plain, "none")
                key = upload_file(env, path, compression)
                result = run_child(env, key, args.chunk)
                if result["status"] != "done" or result["accepted"] != count:
                    raise SystemExit(f"unexpected outcome for {variant}: {result}")
                results[variant] = {**result, "object_bytes": sizes[variant]}
    met = all(r["peak_rss_mb"] < TARGET_RSS_MB for r in results.values())
    if args.json:
        print(json.dumps({"records": count, "results": results, "met": met}))
    else:
        for variant, r in results.items():
            print(
                f"{variant:<6} {r['object_bytes'] / 2**20:>7.1f} MiB  "
                f"peak RSS {r['peak_rss_mb']:>6.1f} MiB (after imports {r['import_rss_mb']:.1f})  "
                f"{r['rows_per_s']:>9,.0f} rows/s  ({r['seconds']:.1f} s, {r['rows']:,} rows)"
            )
        print(f"{'met ' if met else 'MISSED'} peak RSS < {TARGET_RSS_MB:.0f} MiB for every variant")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
