"""The write engine: applies a batch of validated records to `records` under a conflict
strategy, in a few statements whatever the batch size.

1. `pg_advisory_xact_lock` on (tenant, entity): batches for one entity serialise, other
   entities run in parallel. Every writer of `records` takes this lock, so under it the keys
   read in step 2 are exactly the keys that exist.
2. One query reads the stored state of the batch's keys (hash, time, source, version; data
   and field times only for `merge_fields`); keys whose stored row is identical to their one
   record are not even sent back.
3. The records are classified in Python, in order, each against the state the earlier ones
   left, so the result equals applying the accepted records one by one.
4. Only what changed is written: new keys with one COPY straight into `records`, changed keys
   with one COPY into a temporary table and one `INSERT ... ON CONFLICT DO UPDATE`; conflicts
   with one COPY. A record equal to what is stored costs no write at all (no version bump).
   Each key is written once, in its final state; its version grows by the number of the
   batch's records that changed it.

Outcomes per record: `inserted` (new key, or an upsert onto a deleted record), `updated`,
`deleted`, `unchanged` (identical data, or a delete of a missing or deleted record) or
`conflict` (not applied; a `data_conflicts` row says why). Strategies:

- `timestamp_priority`: applied when `updated_at` ≥ the stored one, else a stale-write conflict;
- `source_priority`: the higher priority wins, equal priorities fall back to timestamps;
- `keep_both` / `manual_review`: a different live record is kept and the incoming version
  stored beside it (KEPT_BOTH / PENDING), unless the current version was written by this same
  push (same receipt), which it then supersedes; an upsert onto a deleted record is an insert;
- `merge_fields`: top-level fields merge, the newer time per field wins (ties: incoming);
  fields absent from the incoming document are kept. When some incoming fields lose, an
  AUTO_RESOLVED conflict row lists them: the result is `updated` with that conflict's id when
  the merge still changed the record, `conflict` when it changed nothing. Deletes and upserts
  onto deleted records follow timestamp rules against the record's newest field.
"""

from __future__ import annotations

import json
from binascii import hexlify
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from hybrid.auth.keys import new_id
from hybrid.ingest.hashing import canonical_json, hash_canonical

if TYPE_CHECKING:
    from hybrid.db import Transaction
    from hybrid.ingest.models import IncomingRecord, SourceConfig, Strategy

Status = Literal["inserted", "updated", "unchanged", "deleted", "conflict"]

STALE_WRITE = "stale write"
LOWER_PRIORITY = "lower source priority"
KEPT_BOTH_REASON = "kept both versions"
REVIEW_REASON = "manual review"
FIELDS_KEPT = "fields kept: "
_MAX_REASON = 1000
_STRATEGIES = frozenset(
    {"timestamp_priority", "source_priority", "keep_both", "manual_review", "merge_fields"}
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# pg8000 sends one CopyData message per item: large chunks, few messages.
COPY_CHUNK_BYTES = 1 << 20

_RECORD_COLUMNS = (
    "tenant_id, entity, key, data, content_hash, updated_at, deleted, source, field_times, "
    "version, receipt_id"
)
_CONFLICT_COLUMNS = (
    "id, tenant_id, entity, key, source, strategy, status, current_data, current_updated_at, "
    "current_source, current_version, current_hash, incoming_op, incoming_data, "
    "incoming_updated_at, reason, receipt_id"
)
# key, data, content_hash (bytea hex, its backslash escaped), updated_at, deleted,
# field_times, version: one row of COPY's text format.
_ROW = b"%s\t%s\t\\\\x%s\t%s\t%s\t%s\t%d\n"


@dataclass(slots=True)
class RecordResult:
    """One record's outcome. `conflict_id` is set for `conflict`, and for an `updated` merge
    in which some incoming fields lost."""

    index: int
    status: Status
    conflict_id: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    conflicts: int
    results: list[RecordResult]

    def to_counts(self) -> dict[str, int]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "conflicts": self.conflicts,
        }


class _Version:
    """A record's state: the stored row (`stored`), or one written earlier in this batch.
    Its time is kept as given (`at`) or as stored (`us`, microseconds) and converted lazily."""

    __slots__ = (
        "at",
        "canonical",
        "content_hash",
        "data",
        "deleted",
        "field_times",
        "receipt_id",
        "source",
        "stored",
        "us",
        "version",
    )

    def __init__(
        self,
        deleted: bool,
        content_hash: bytes,
        at: datetime | None,
        us: int | None,
        source: str,
        version: int,
        receipt_id: str | None,
        data: dict[str, Any] | None,
        canonical: bytes | None,
        field_times: dict[str, int] | None,
        stored: bool,
    ) -> None:
        self.deleted = deleted
        self.content_hash = content_hash
        self.at = at
        self.us = us
        self.source = source
        self.version = version
        self.receipt_id = receipt_id
        self.data = data
        self.canonical = canonical
        self.field_times = field_times
        self.stored = stored

    def micros(self) -> int:
        if self.us is None:
            assert self.at is not None
            self.us = _micros(self.at)
        return self.us

    def timestamp(self) -> datetime:
        if self.at is None:
            assert self.us is not None
            self.at = _from_micros(self.us)
        return self.at


class _Slot:
    """A key the batch touches beyond a no-op: whether its row existed, its current state,
    and how many of the batch's records changed it."""

    __slots__ = ("current", "existed", "writes")

    def __init__(self, existed: bool, current: _Version | None) -> None:
        self.existed = existed
        self.current = current
        self.writes = 0


@dataclass(slots=True)
class _Conflict:
    id: str
    key: str
    status: str
    reason: str
    current: _Version
    incoming: IncomingRecord


def lock_entity(tx: Transaction, tenant_id: str, entity: str) -> None:
    """Serialise writers of one (tenant, entity) until the transaction ends."""
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext(:tenant_id), hashtext(:entity))",
        tenant_id=tenant_id,
        entity=entity,
    )


def apply_batch(
    tx: Transaction,
    *,
    tenant_id: str,
    entity: str,
    source: SourceConfig,
    strategy: Strategy,
    records: Sequence[tuple[int, IncomingRecord]],
    receipt_id: str,
    source_priorities: Mapping[str, int] | None = None,
) -> BatchOutcome:
    """Apply validated records (with their batch index) in order; see the module docstring.

    Needs READ COMMITTED (the default): the state is read after the entity lock is taken.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown conflict strategy {strategy!r}")
    if not records:
        return BatchOutcome(0, 0, 0, 0, 0, [])
    lock_entity(tx, tenant_id, entity)
    merge = strategy == "merge_fields"
    stored, missing = _load_state(tx, tenant_id, entity, records, merge)
    batch = _Classifier(
        strategy=strategy,
        source=source,
        receipt_id=receipt_id,
        priorities=source_priorities or {},
        stored=stored,
        missing=missing,
    )
    for index, record in records:
        batch.apply(index, record)
    # Before the writes: conflicts keep the stored data as it was when they arose.
    documents = _load_documents(tx, tenant_id, entity, batch.conflicts)
    _write_records(tx, tenant_id, entity, source.name, receipt_id, batch.slots)
    if batch.conflicts:
        _write_conflicts(
            tx, tenant_id, entity, strategy, source.name, receipt_id, batch.conflicts, documents
        )
    return batch.outcome()


class _Classifier:
    """Decides each record's outcome against the state of its key, updating that state."""

    def __init__(
        self,
        *,
        strategy: str,
        source: SourceConfig,
        receipt_id: str,
        priorities: Mapping[str, int],
        stored: dict[str, list[Any]],
        missing: set[str],
    ) -> None:
        self.strategy = strategy
        self.source = source.name
        self.receipt_id = receipt_id
        self.priorities = priorities
        self.priority = priorities.get(source.name, source.priority)
        self.merge = strategy == "merge_fields"
        self.stored = stored
        self.missing = missing
        self.slots: dict[str, _Slot] = {}
        self.results: list[RecordResult] = []
        self.conflicts: list[_Conflict] = []
        self.counts = dict.fromkeys(("inserted", "updated", "unchanged", "deleted", "conflict"), 0)

    def outcome(self) -> BatchOutcome:
        c = self.counts
        return BatchOutcome(
            c["inserted"], c["updated"], c["unchanged"], c["deleted"], c["conflict"], self.results
        )

    def apply(self, index: int, record: IncomingRecord) -> None:
        key = record.key
        slot = self.slots.get(key)
        if slot is None:
            # The key's state is still the stored one.
            row = self.stored.get(key)
            if row is None:
                if key in self.missing and record.op == "upsert":
                    slot = self.slots[key] = _Slot(False, None)
                    self._write(index, slot, record, "inserted")
                else:
                    # A delete of a missing key, or a key not sent back: live and identical.
                    self._result(index, "unchanged")
                return
            slot = self.slots[key] = _Slot(True, self._from_row(row))
        current = slot.current
        assert current is not None
        if record.op == "upsert":
            if not current.deleted and current.content_hash == record.content_hash:
                self._result(index, "unchanged")
                return
        elif current.deleted:
            self._result(index, "unchanged")
            return
        self._resolve(index, slot, current, record)

    def _from_row(self, row: list[Any]) -> _Version:
        times = row[8] if self.merge else None
        return _Version(
            row[3],
            bytes.fromhex(row[1]),
            None,
            row[2],
            row[4],
            row[5],
            row[6],
            row[7] if self.merge else None,
            None,
            _parse_times(times) if times else None,
            True,
        )

    def _resolve(self, index: int, slot: _Slot, current: _Version, record: IncomingRecord) -> None:
        """An existing record (live or deleted) meets a different incoming version."""
        status: Status = (
            "deleted" if record.op == "delete" else "inserted" if current.deleted else "updated"
        )
        strategy = self.strategy
        incoming_us = _micros(record.updated_at)
        if strategy == "timestamp_priority" or strategy == "merge_fields":
            if self.merge and record.op == "upsert" and not current.deleted:
                self._merge(index, slot, current, record, incoming_us)
            elif incoming_us < current.micros():
                self._conflict(index, slot, record, "AUTO_RESOLVED", STALE_WRITE)
            else:
                self._write(index, slot, record, status)
        elif strategy == "source_priority":
            if current.source == self.source:
                theirs = self.priority
            else:
                theirs = self.priorities.get(current.source, 0)
            if self.priority > theirs or (
                self.priority == theirs and incoming_us >= current.micros()
            ):
                self._write(index, slot, record, status)
            elif self.priority < theirs:
                self._conflict(index, slot, record, "AUTO_RESOLVED", LOWER_PRIORITY)
            else:
                self._conflict(index, slot, record, "AUTO_RESOLVED", STALE_WRITE)
        elif current.deleted or current.receipt_id == self.receipt_id:
            self._write(index, slot, record, status)
        elif strategy == "keep_both":
            self._conflict(index, slot, record, "KEPT_BOTH", KEPT_BOTH_REASON)
        else:
            self._conflict(index, slot, record, "PENDING", REVIEW_REASON)

    def _merge(
        self,
        index: int,
        slot: _Slot,
        current: _Version,
        record: IncomingRecord,
        incoming_us: int,
    ) -> None:
        stored = current.data or {}
        known = current.field_times or {}
        current_us = current.micros()
        merged = dict(stored)
        times = {name: known.get(name, current_us) for name in stored}
        lost: list[str] = []
        assert record.data is not None
        for name, value in record.data.items():
            field_us = times.get(name)
            if field_us is None or incoming_us >= field_us:
                merged[name] = value
                times[name] = incoming_us
            elif not _same_json(stored[name], value):
                lost.append(name)
        canonical = canonical_json(merged)
        digest = hash_canonical(canonical)
        if digest == current.content_hash:
            if lost:
                self._conflict(index, slot, record, "AUTO_RESOLVED", _fields_kept(lost))
            else:
                self._result(index, "unchanged")
            return
        newer = incoming_us >= current_us
        slot.current = _Version(
            False,
            digest,
            record.updated_at if newer else current.at,
            incoming_us if newer else current_us,
            self.source,
            current.version + 1,
            self.receipt_id,
            merged,
            canonical,
            times,
            False,
        )
        slot.writes += 1
        conflict_id = None
        if lost:
            conflict_id = self._add_conflict(current, record, "AUTO_RESOLVED", _fields_kept(lost))
        self._result(index, "updated", conflict_id)

    def _write(self, index: int, slot: _Slot, record: IncomingRecord, status: Status) -> None:
        previous = slot.current
        data = record.data
        slot.current = _Version(
            record.op == "delete",
            record.content_hash,
            record.updated_at,
            None,
            self.source,
            1 if previous is None else previous.version + 1,
            self.receipt_id,
            data,
            record.canonical_data,
            dict.fromkeys(data, _micros(record.updated_at)) if self.merge and data else None,
            False,
        )
        slot.writes += 1
        self._result(index, status)

    def _conflict(
        self, index: int, slot: _Slot, record: IncomingRecord, status: str, reason: str
    ) -> None:
        assert slot.current is not None
        conflict_id = self._add_conflict(slot.current, record, status, reason)
        self._result(index, "conflict", conflict_id)

    def _add_conflict(
        self, current: _Version, record: IncomingRecord, status: str, reason: str
    ) -> str:
        conflict = _Conflict(new_id("cfl"), record.key, status, reason, current, record)
        self.conflicts.append(conflict)
        return conflict.id

    def _result(self, index: int, status: Status, conflict_id: str | None = None) -> None:
        self.counts[status] += 1
        self.results.append(RecordResult(index, status, conflict_id))


def _load_state(
    tx: Transaction,
    tenant_id: str,
    entity: str,
    records: Sequence[tuple[int, IncomingRecord]],
    with_data: bool,
) -> tuple[dict[str, list[Any]], set[str]]:
    """What the classifier needs to know about the stored rows of the batch's keys.

    Each key is sent with the hash of its record when it is its only record and an upsert:
    a stored live row with that hash is certainly `unchanged`, so it is not sent back at all.
    Back come the missing keys, and the other stored rows as [key, hash hex, µs, deleted,
    source, version, receipt, (data, field times)], in one JSON document: far cheaper to read
    than rows. The LATERAL ... LIMIT 1 probes the primary key once per key whatever the
    statistics say (a fresh tenant's are always stale).
    """
    first: dict[str, str | None] = {}
    for _, record in records:
        key = record.key
        if key in first:
            first[key] = None
        else:
            first[key] = record.content_hash.hex() if record.op == "upsert" else None
    extra = ", r.data, r.field_times" if with_data else ""
    document = tx.scalar(
        "SELECT coalesce(json_agg(CASE WHEN r.key IS NULL THEN to_json(k.key) ELSE "
        "json_build_array(r.key, encode(r.content_hash, 'hex'), "
        "(extract(epoch FROM r.updated_at) * 1000000)::bigint, r.deleted, r.source, "
        f"r.version, r.receipt_id{extra}) END), '[]')::text "
        "FROM jsonb_each_text(CAST(:keys AS jsonb)) AS k(key, hash) "
        "LEFT JOIN LATERAL (SELECT * FROM records WHERE tenant_id = :tenant_id "
        "AND entity = :entity AND key = k.key LIMIT 1) r ON true "
        "WHERE r.key IS NULL OR k.hash IS NULL OR r.deleted "
        "OR r.content_hash <> decode(k.hash, 'hex')",
        tenant_id=tenant_id,
        entity=entity,
        keys=json.dumps(first, ensure_ascii=False),
    )
    stored: dict[str, list[Any]] = {}
    missing: set[str] = set()
    for item in json.loads(document):
        if isinstance(item, str):
            missing.add(item)
        else:
            stored[item[0]] = item
    return stored, missing


def _write_records(
    tx: Transaction,
    tenant_id: str,
    entity: str,
    source: str,
    receipt_id: str,
    slots: dict[str, _Slot],
) -> None:
    """New keys: one COPY into `records`. Changed keys: one COPY into a temporary table and
    one upsert from it. Every version the batch wrote comes from its source and receipt."""
    fresh: list[bytes] = []
    changed: list[bytes] = []
    # The columns COPY receives, constant ones first: every new row starts with `prefix`.
    prefix = b"\t".join((_text(tenant_id), _text(entity), _text(source), _text(receipt_id), b""))
    no_times = _json(None)
    for key, slot in slots.items():
        version = slot.current
        if not slot.writes or version is None:
            continue
        times = version.field_times
        row = _ROW % (
            _text(key),
            _json(version.canonical),
            hexlify(version.content_hash),
            version.timestamp().isoformat().encode(),
            b"t" if version.deleted else b"f",
            no_times if times is None else _json(_dump_times(times)),
            version.version,
        )
        if slot.existed:
            changed.append(row)
        else:
            fresh.append(prefix)
            fresh.append(row)
    if fresh:
        tx.copy_in(
            "COPY records (tenant_id, entity, source, receipt_id, key, data, content_hash, "
            "updated_at, deleted, field_times, version) FROM STDIN",
            _chunks(fresh),
        )
    if changed:
        tx.execute(
            "CREATE TEMP TABLE ingest_changes (key text, data jsonb, content_hash bytea, "
            "updated_at timestamptz, deleted boolean, field_times jsonb, version bigint) "
            "ON COMMIT DROP"
        )
        tx.copy_in("COPY ingest_changes FROM STDIN", _chunks(changed))
        # Every key exists (the lock guarantees it): each row takes the DO UPDATE path, one
        # primary-key probe each, with no join to plan on the temp table's missing statistics.
        tx.execute(
            f"INSERT INTO records ({_RECORD_COLUMNS}) SELECT :tenant_id, :entity, key, data, "
            "content_hash, updated_at, deleted, :source, field_times, version, :receipt_id "
            "FROM ingest_changes ON CONFLICT (tenant_id, entity, key) DO UPDATE SET "
            "data = EXCLUDED.data, content_hash = EXCLUDED.content_hash, "
            "updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted, "
            "source = EXCLUDED.source, field_times = EXCLUDED.field_times, "
            "version = EXCLUDED.version, receipt_id = EXCLUDED.receipt_id, ingested_at = now()",
            tenant_id=tenant_id,
            entity=entity,
            source=source,
            receipt_id=receipt_id,
        )
        tx.execute("DROP TABLE ingest_changes")


def _load_documents(
    tx: Transaction, tenant_id: str, entity: str, conflicts: list[_Conflict]
) -> dict[str, bytes]:
    """The stored JSON (as COPY fields) of live records that conflicts met unloaded."""
    keys = {
        c.key
        for c in conflicts
        if c.current.stored and not c.current.deleted and c.current.data is None
    }
    if not keys:
        return {}
    rows = tx.rows(
        "SELECT r.key, r.data::text AS data "
        "FROM jsonb_array_elements_text(CAST(:keys AS jsonb)) AS k(key) "
        "CROSS JOIN LATERAL (SELECT key, data FROM records WHERE tenant_id = :tenant_id "
        "AND entity = :entity AND key = k.key LIMIT 1) r",
        tenant_id=tenant_id,
        entity=entity,
        keys=json.dumps(sorted(keys), ensure_ascii=False),
    )
    return {row["key"]: _json(row["data"].encode("utf-8")) for row in rows}


def _write_conflicts(
    tx: Transaction,
    tenant_id: str,
    entity: str,
    strategy: str,
    source: str,
    receipt_id: str,
    conflicts: list[_Conflict],
    documents: Mapping[str, bytes],
) -> None:
    """One COPY of conflict rows, each with the current version as it was when it arose."""
    prefix = b"\t".join((_text(tenant_id), _text(entity)))
    shared = b"\t".join((_text(source), _text(strategy)))
    receipt = _text(receipt_id)
    rows: list[bytes] = []
    for conflict in conflicts:
        current, incoming = conflict.current, conflict.incoming
        if current.deleted:
            current_data = b"\\N"
        elif current.canonical is not None:
            current_data = _json(current.canonical)
        elif current.data is not None:
            current_data = _json(canonical_json(current.data))
        else:
            current_data = documents[conflict.key]
        rows.append(
            b"\t".join(
                (
                    _text(conflict.id),
                    prefix,
                    _text(conflict.key),
                    shared,
                    conflict.status.encode(),
                    current_data,
                    current.timestamp().isoformat().encode(),
                    _text(current.source),
                    b"%d" % current.version,
                    b"\\\\x" + hexlify(current.content_hash),
                    incoming.op.encode(),
                    _json(incoming.canonical_data),
                    incoming.updated_at.isoformat().encode(),
                    _text(conflict.reason),
                    receipt,
                )
            )
        )
        rows.append(b"\n")
    tx.copy_in(f"COPY data_conflicts ({_CONFLICT_COLUMNS}) FROM STDIN", _chunks(rows))


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _parse_times(value: Mapping[str, str]) -> dict[str, int]:
    return {name: _micros(datetime.fromisoformat(at)) for name, at in value.items()}


def _dump_times(value: Mapping[str, int] | None) -> bytes | None:
    if value is None:
        return None
    return canonical_json({name: _from_micros(us).isoformat() for name, us in value.items()})


def _same_json(left: Any, right: Any) -> bool:
    return canonical_json({"v": left}) == canonical_json({"v": right})


def _fields_kept(names: list[str]) -> str:
    return (FIELDS_KEPT + ",".join(sorted(names)))[:_MAX_REASON]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> bytes:
    """A text field of COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.translate(_COPY_ESCAPES)
    return value.encode("utf-8")


def _json(canonical: bytes | None) -> bytes:
    """A JSON document as a COPY text field: JSON escapes every control character, so only
    backslashes need doubling."""
    if canonical is None:
        return b"\\N"
    return canonical.replace(b"\\", b"\\\\")


def _chunks(parts: list[bytes]) -> Iterator[bytes]:
    payload = b"".join(parts)
    for start in range(0, len(payload), COPY_CHUNK_BYTES):
        yield payload[start : start + COPY_CHUNK_BYTES]
