"""Push-ingest throughput: the real handler against a COPY + upsert baseline, in one run.

200,000 records (about 200 bytes of JSON each) are pushed in batches of 5,000 as Function URL
events (`POST /api/v1/sync/push/batch`) through `functions/push_ingest/index.py`'s
`main_handler`, into the embedded PostgreSQL: first all new, then again with 10 % changed. The
baseline loads the same rows with ONE COPY into a temporary table and ONE
`INSERT ... ON CONFLICT ... DO UPDATE ... WHERE content_hash IS DISTINCT FROM` (no handler, no
validation), for another tenant. Request bodies are serialised before the clock starts (that
is the client's work); the baseline's clock includes encoding and hashing the rows. The
handler runs with LOG_LEVEL=WARNING, and the generated data is frozen out of the garbage
collector's sight (`gc.freeze`): it is not part of a function's heap.

Targets (issue 3): ≥ 25,000 records/s through the handler, ≥ 0.5 of the baseline, and a re-push
faster than the first push. Absolute figures drift on this machine: read the ratios.

`--engine-only` measures `validate_records` + `apply_batch` (one transaction per batch)
instead of the handler, the same way.

    python bench/ingest.py [--records 200000] [--batch 5000] [--changed 0.1] [--runs 1]
                           [--engine-only] [--use-env] [--json] [--check]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for extra in (REPO_ROOT / "layers" / "common", REPO_ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TARGET_HANDLER_RPS = 25_000.0
TARGET_RATIO = 0.5
SOURCE = "bench"
ENTITY = "bench"
PATH = "/api/v1/sync/push/batch"
COPY_CHUNK = 1 << 20
CITIES = ("Beijing", "Shanghai", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan")
SEGMENTS = ("retail", "wholesale", "online", "partner")
BASE_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Phase:
    name: str
    records: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


# --- data -------------------------------------------------------------------------------------


def make_records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "key": f"cust-{i:07d}",
            "op": "upsert",
            "updated_at": (BASE_TIME + timedelta(seconds=i)).isoformat(),
            "data": {
                "name": f"Customer {i}",
                "email": f"customer{i}@example.com",
                "phone": f"+86 138{i:08d}",
                "city": rng.choice(CITIES),
                "segment": rng.choice(SEGMENTS),
                "balance": rng.randint(0, 10_000_000),
                "score": round(rng.random(), 4),
                "active": rng.random() < 0.9,
                "tags": rng.sample(["vip", "new", "churn-risk", "b2b", "wechat"], 2),
                "rev": 0,
            },
        }
        for i in range(count)
    ]


def change_some(
    records: list[dict[str, Any]], share: float, seed: int = 11
) -> list[dict[str, Any]]:
    """The same records with `share` of them changed (newer time, new balance and revision)."""
    rng = random.Random(seed)
    changed = set(rng.sample(range(len(records)), int(len(records) * share)))
    result = []
    for i, record in enumerate(records):
        if i in changed:
            updated = datetime.fromisoformat(record["updated_at"]) + timedelta(days=1)
            record = {
                **record,
                "updated_at": updated.isoformat(),
                "data": {**record["data"], "balance": rng.randint(0, 10_000_000), "rev": 1},
            }
        result.append(record)
    return result


def batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


# --- the three ways in ------------------------------------------------------------------------


def baseline(url: str, tenant_id: str, records: list[dict[str, Any]]) -> float:
    """ONE COPY into a temp table + ONE upsert that skips identical rows; seconds."""
    from hybrid.db import Database
    from hybrid.ingest.hashing import canonical_json, hash_canonical

    db = Database(url, application_name="bench-baseline")
    with db.transaction() as tx:  # connect outside the clock
        tx.execute("SELECT 1")
    started = time.perf_counter()
    parts: list[bytes] = []
    for record in records:
        canonical = canonical_json(record["data"])
        parts.append(
            b"%s\t%s\t\\\\x%s\t%s\n"
            % (
                record["key"].encode(),
                canonical.replace(b"\\", b"\\\\"),
                hash_canonical(canonical).hex().encode(),
                record["updated_at"].encode(),
            )
        )
    payload = b"".join(parts)
    with db.transaction() as tx:
        tx.execute(
            "CREATE TEMP TABLE bench_load (key text, data jsonb, content_hash bytea, "
            "updated_at timestamptz) ON COMMIT DROP"
        )
        tx.copy_in(
            "COPY bench_load FROM STDIN",
            (payload[i : i + COPY_CHUNK] for i in range(0, len(payload), COPY_CHUNK)),
        )
        tx.execute(
            "INSERT INTO records (tenant_id, entity, key, data, content_hash, updated_at, "
            "source, receipt_id) "
            "SELECT :tenant_id, :entity, key, data, content_hash, updated_at, :source, 'baseline' "
            "FROM bench_load ON CONFLICT (tenant_id, entity, key) DO UPDATE SET "
            "data = EXCLUDED.data, content_hash = EXCLUDED.content_hash, "
            "updated_at = EXCLUDED.updated_at, version = records.version + 1, "
            "ingested_at = now() "
            "WHERE records.content_hash IS DISTINCT FROM EXCLUDED.content_hash",
            tenant_id=tenant_id,
            entity=ENTITY,
            source=SOURCE,
        )
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def engine_pusher(url: str, tenant_id: str) -> Callable[[list[dict[str, Any]]], dict[str, int]]:
    from hybrid.db import database
    from hybrid.ingest.engine import apply_batch
    from hybrid.ingest.models import SourceConfig, validate_records

    db = database(url)
    source = SourceConfig(SOURCE, 0, "timestamp_priority")

    def push(batch: list[dict[str, Any]]) -> dict[str, int]:
        valid, rejected = validate_records(batch)
        with db.transaction() as tx:
            outcome = apply_batch(
                tx,
                tenant_id=tenant_id,
                entity=ENTITY,
                source=source,
                strategy="timestamp_priority",
                records=valid,
                receipt_id=f"rcp_{uuid.uuid4().hex[:16]}",
            )
        return {**outcome.to_counts(), "rejected": len(rejected)}

    return push


def handler_pusher(token: str) -> Callable[[str], dict[str, int]]:
    """Call the real handler with a Function URL event carrying an already serialised body."""
    spec = importlib.util.spec_from_file_location(
        "push_ingest_index_bench", REPO_ROOT / "functions" / "push_ingest" / "index.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    template = json.loads((REPO_ROOT / "tests" / "events" / "function_url.json").read_text())

    def push(body: str) -> dict[str, int]:
        request_id = str(uuid.uuid4())
        event = {
            **template,
            "httpMethod": "POST",
            "path": PATH,
            "headers": {
                "accept": "application/json",
                "content-type": "application/json",
                "content-length": str(len(body.encode())),
                "authorization": f"Bearer {token}",
                "user-agent": "bench/ingest",
                "x-scf-request-id": request_id,
            },
            "body": body,
            "isBase64Encoded": False,
            "queryString": {},
        }
        result = module.main_handler(event, _context(request_id))
        raw = result.get("body", "")
        text = base64.b64decode(raw) if result.get("isBase64Encoded") else raw
        if result["statusCode"] != 200:
            raise SystemExit(f"handler answered {result['statusCode']}: {str(text)[:500]}")
        answer = json.loads(text)
        return {
            name: len(answer[name]) if name == "rejected" else int(answer[name])
            for name in ("inserted", "updated", "unchanged", "deleted", "conflicts", "rejected")
        }

    return push


def _context(request_id: str) -> dict[str, Any]:
    return {
        "memory_limit_in_mb": 512,
        "time_limit_in_ms": 30000,
        "request_id": request_id,
        "function_name": "push-ingest",
        "function_version": "$LATEST",
        "namespace": "default",
        "tencentcloud_region": "ap-guangzhou",
        "tencentcloud_appid": "1250000000",
        "tencentcloud_uin": "100000000001",
    }


def timed_pushes(
    push: Callable[[Any], dict[str, int]], items: list[Any]
) -> tuple[float, dict[str, int]]:
    totals: dict[str, int] = {}
    started = time.perf_counter()
    for item in items:
        for name, value in push(item).items():
            totals[name] = totals.get(name, 0) + value
    return time.perf_counter() - started, totals


# --- setup ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stack_environment(use_env: bool, need_all: bool) -> Iterator[dict[str, str]]:
    """The environment of a migrated stack: the servers named by DATABASE_URL, REDIS_URL and
    COS_* (`--use-env`), or an embedded LocalStack in a temporary directory."""
    from infra.migrate import upgrade

    if use_env:
        names = ("DATABASE_URL", "REDIS_URL", "COS_ENDPOINT_URL", "COS_SECRET_ID",
                 "COS_SECRET_KEY", "COS_REGION", "COS_BUCKET")  # fmt: skip
        env = {name: os.environ[name] for name in names if os.environ.get(name)}
        if "DATABASE_URL" not in env:
            raise SystemExit("--use-env needs DATABASE_URL (and REDIS_URL, COS_* for the handler)")
        upgrade(env["DATABASE_URL"])
        yield env
        return
    from local_emulator.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as data_dir:
        services = ("postgres", "redis", "cos") if need_all else ("postgres",)
        stack = LocalStack(Path(data_dir), services=list(services))
        stack.start_services()
        try:
            env = dict(stack.endpoints.env()) if need_all else {}
            env["DATABASE_URL"] = stack.database_url
            upgrade(env["DATABASE_URL"])
            yield env
        finally:
            stack.stop()


def new_tenant(url: str, name: str, with_key: bool) -> tuple[str, str | None]:
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    with database(url).transaction() as tx:
        tenant = create_tenant(tx, name)
        token = None
        if with_key:
            _, key = create_api_key(tx, tenant_id=tenant.id, name="bench", scopes=["ingest:write"])
            token = key.token
    return tenant.id, token


def configure_handler_env(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.update(
        {
            "APP_ENV": "local",
            "LOG_LEVEL": "WARNING",
            "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
    )


# --- the run ----------------------------------------------------------------------------------


def run_once(args: argparse.Namespace, env: dict[str, str], run: int) -> dict[str, Phase]:
    url = env["DATABASE_URL"]
    first = make_records(args.records)
    second = change_some(first, args.changed)
    tag = uuid.uuid4().hex[:6]
    base_tenant, _ = new_tenant(url, f"bench-baseline-{tag}-{run}", with_key=False)
    push_tenant, token = new_tenant(url, f"bench-push-{tag}-{run}", with_key=not args.engine_only)
    label = "engine" if args.engine_only else "handler"
    if args.engine_only:
        engine = engine_pusher(url, push_tenant)
        first_items: list[Any] = batches(first, args.batch)
        second_items: list[Any] = batches(second, args.batch)
        push: Callable[[Any], dict[str, int]] = engine
    else:
        assert token is not None
        first_items = [_body(b) for b in batches(first, args.batch)]
        second_items = [_body(b) for b in batches(second, args.batch)]
        push = handler_pusher(token)
    # The generated data is not part of a function's heap: keep the collector off it.
    gc.collect()
    gc.freeze()
    phases: dict[str, Phase] = {}
    phases["baseline_new"] = Phase(
        "baseline, all new", len(first), baseline(url, base_tenant, first)
    )
    seconds, totals = timed_pushes(push, first_items)
    _expect(totals, inserted=len(first))
    phases[f"{label}_new"] = Phase(f"{label}, all new", len(first), seconds)
    phases["baseline_repush"] = Phase(
        "baseline, re-push 10% changed", len(second), baseline(url, base_tenant, second)
    )
    seconds, totals = timed_pushes(push, second_items)
    changed = int(len(first) * args.changed)
    _expect(totals, updated=changed, unchanged=len(first) - changed)
    phases[f"{label}_repush"] = Phase(f"{label}, re-push 10% changed", len(second), seconds)
    return phases


def _body(batch: list[dict[str, Any]]) -> str:
    return json.dumps({"source": SOURCE, "records": batch}, ensure_ascii=False)


def _expect(totals: dict[str, int], **wanted: int) -> None:
    for name, value in wanted.items():
        if totals.get(name) != value:
            raise SystemExit(f"unexpected outcome: {totals} (wanted {wanted})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--changed", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--engine-only", action="store_true")
    parser.add_argument(
        "--use-env",
        action="store_true",
        help="use the servers named by DATABASE_URL, REDIS_URL, COS_* instead of a LocalStack",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    sample = make_records(1)[0]
    print(
        f"records: {args.records:,} in batches of {args.batch:,}; one record is "
        f"{len(json.dumps(sample, ensure_ascii=False))} bytes of JSON "
        f"({len(json.dumps(sample['data'], ensure_ascii=False))} of data)",
        file=sys.stderr,
    )
    with stack_environment(args.use_env, need_all=not args.engine_only) as env:
        if not args.engine_only:
            configure_handler_env(env)
        runs = [run_once(args, env, run) for run in range(args.runs)]
    median = {
        name: Phase(runs[0][name].name, runs[0][name].records,
                    statistics.median(r[name].seconds for r in runs))
        for name in runs[0]
    }  # fmt: skip
    report = summarise(median, "engine" if args.engine_only else "handler")
    if args.json:
        print(json.dumps({**report, "phases": {k: asdict(v) for k, v in median.items()}}))
    else:
        for phase in median.values():
            print(f"{phase.name:<36} {phase.rps:>10,.0f} records/s  ({phase.seconds:.2f} s)")
        for line in report["lines"]:
            print(line)
    return 1 if args.check and not report["met"] else 0


def summarise(phases: dict[str, Phase], label: str) -> dict[str, Any]:
    new, repush = phases[f"{label}_new"], phases[f"{label}_repush"]
    ratio_new = new.rps / phases["baseline_new"].rps
    ratio_repush = repush.rps / phases["baseline_repush"].rps
    checks = {
        f"{label} ≥ {TARGET_HANDLER_RPS:,.0f} records/s (all new)": new.rps >= TARGET_HANDLER_RPS,
        f"{label} ≥ {TARGET_HANDLER_RPS:,.0f} records/s (re-push)": (
            repush.rps >= TARGET_HANDLER_RPS
        ),
        f"{label}/baseline ≥ {TARGET_RATIO} (all new: {ratio_new:.2f})": ratio_new >= TARGET_RATIO,
        f"{label}/baseline ≥ {TARGET_RATIO} (re-push: {ratio_repush:.2f})": (
            ratio_repush >= TARGET_RATIO
        ),
        "re-push faster than the first push": repush.rps > new.rps,
    }
    lines = [f"{'met ' if ok else 'MISSED'} {what}" for what, ok in checks.items()]
    if label == "engine":
        lines.append("(engine only: the handler's targets apply to the handler run)")
    return {
        "ratio_new": ratio_new,
        "ratio_repush": ratio_repush,
        "checks": checks,
        "met": all(checks.values()),
        "lines": lines,
    }


if __name__ == "__main__":
    raise SystemExit(main())
