"""File uploads: the `file_uploads` lifecycle, from the presigned URL to the last chunk.

`create_upload` reserves the object key (`pending`); the upload's COS object-created event calls
`process_upload`, which streams the object through `hybrid.ingest.files`, validates its items in
chunks and applies each chunk in its own transaction together with the upload's progress
(`rows_done`, counts, `bytes_read`, new errors). A crash or a re-delivered event resumes after
the last committed chunk: the first `rows_done` items are parsed again but not applied, and each
chunk transaction first checks, under the row lock, that `rows_done` is still where this run
expects it, so two deliveries running at once never apply a chunk twice.

The upload ends `done`, or `failed` with a reason when the file cannot be read (missing object,
corrupt or truncated gzip, wrong format, broken JSON structure) or a chunk is refused for a
reason a retry will not fix (a `DomainError`, such as an exhausted quota). Chunks committed
before a failure stay applied. `done` and `failed` are final: a re-delivered event is a no-op;
a new file needs a new upload. Any other error (database, COS, a bug) propagates so the event is
retried, and the upload stays `processing` where it stopped.

Errors are `{"line", "error"}`: `line` as in `hybrid.ingest.files.ParsedItem` (0: the whole file,
e.g. a missing object); the first `max_errors_kept` are stored, the status shows 100.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from hybrid import log
from hybrid.auth.keys import new_id
from hybrid.errors import DomainError, ResourceNotFoundError
from hybrid.ingest.files import COMPRESSIONS, FORMATS, ParsedItem, iter_file_records

if TYPE_CHECKING:
    from hybrid.db import Database, Transaction
    from hybrid.ingest.models import IncomingRecord
    from hybrid.storage.port import ObjectStore

UPLOAD_PREFIX = "uploads/"
STATUSES = ("pending", "processing", "done", "failed")
FINAL_STATUSES = ("done", "failed")
OUTCOME_KEYS = ("inserted", "updated", "unchanged", "deleted", "conflicts")
PUBLIC_ERRORS = 100
MAX_ERROR_CHARS = 300
MAX_FILENAME_CHARS = 100
STREAM_BUFFER_BYTES = 256 * 1024
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
MISSING_OBJECT = "the uploaded file was not found"

_COLUMNS = (
    "id, tenant_id, source, entity, filename, format, compression, size, object_key, status, "
    "conflict_strategy, accepted, rejected, rows_done, bytes_read, errors, outcome, failure, "
    "receipt_id, actor, created_at, updated_at"
)


class UploadNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("upload not found")


@dataclass(frozen=True)
class Upload:
    id: str
    tenant_id: str
    source: str
    entity: str
    filename: str
    format: str
    compression: str
    size: int | None
    object_key: str
    status: str
    conflict_strategy: str | None
    accepted: int
    rejected: int
    rows_done: int
    bytes_read: int
    errors: list[dict[str, Any]]
    outcome: dict[str, int]
    failure: str | None
    receipt_id: str | None
    actor: str
    created_at: datetime
    updated_at: datetime

    def to_public(self) -> dict[str, Any]:
        """The status document of `GET /api/v1/sync/push/file/{upload_id}`."""
        return {
            "upload_id": self.id,
            "status": self.status,
            "source": self.source,
            "entity": self.entity,
            "filename": self.filename,
            "format": self.format,
            "compression": self.compression,
            "size": self.size,
            "accepted": self.accepted,
            "rejected": self.rejected,
            **{key: int(self.outcome.get(key, 0)) for key in OUTCOME_KEYS},
            "rows_done": self.rows_done,
            "bytes_read": self.bytes_read,
            "errors": [
                {"line": error["line"], "error": error["error"]}
                for error in self.errors[:PUBLIC_ERRORS]
            ],
            "failure": self.failure,
            "receipt_id": self.receipt_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class ChunkOutcome(Protocol):
    """What applying a chunk reports: `hybrid.ingest.engine.BatchOutcome` is one."""

    def to_counts(self) -> Mapping[str, int]: ...


# Counts of one applied chunk: inserted, updated, unchanged, deleted, conflicts.
Counts = ChunkOutcome | Mapping[str, int]
ChunkApplier = Callable[["Transaction", Upload, list[tuple[int, "IncomingRecord"]]], Counts]
FinishHook = Callable[["Transaction", Upload], None]


def sanitise_filename(filename: str) -> str:
    """The last path component, reduced to `[A-Za-z0-9._-]` (object keys stay URL-safe)."""
    base = re.split(r"[/\\]", filename)[-1]
    safe = _UNSAFE_FILENAME.sub("_", base).strip("._")
    return safe[-MAX_FILENAME_CHARS:].lstrip("._") or "upload"


def create_upload(
    tx: Transaction,
    *,
    tenant_id: str,
    source: str,
    entity: str,
    filename: str,
    fmt: str,
    compression: str,
    size: int | None,
    conflict_strategy: str | None,
    actor: str,
) -> Upload:
    """A `pending` upload with its object key `uploads/<tenant>/<upload id>/<filename>` and the
    receipt id every chunk of the file will be written under."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown file format: {fmt!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression: {compression!r}")
    upload_id = new_id("upl")
    object_key = f"{UPLOAD_PREFIX}{tenant_id}/{upload_id}/{sanitise_filename(filename)}"
    row = tx.one(
        "INSERT INTO file_uploads (id, tenant_id, source, entity, filename, format, compression, "
        "size, object_key, conflict_strategy, receipt_id, actor) VALUES (:id, :tenant_id, "
        ":source, :entity, :filename, :format, :compression, :size, :object_key, :strategy, "
        f":receipt_id, :actor) RETURNING {_COLUMNS}",
        id=upload_id,
        tenant_id=tenant_id,
        source=source,
        entity=entity,
        filename=filename,
        format=fmt,
        compression=compression,
        size=size,
        object_key=object_key,
        strategy=conflict_strategy,
        receipt_id=new_id("rcp"),
        actor=actor,
    )
    assert row is not None
    return _upload(row)


def get_upload(tx: Transaction, tenant_id: str, upload_id: str) -> Upload:
    """The tenant's upload; another tenant's is not found, as an unknown one."""
    row = tx.one(
        f"SELECT {_COLUMNS} FROM file_uploads WHERE id = :id AND tenant_id = :tenant_id",
        id=upload_id,
        tenant_id=tenant_id,
    )
    if row is None:
        raise UploadNotFoundError()
    return _upload(row)


def find_by_object_key(tx: Transaction, object_key: str) -> Upload | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM file_uploads WHERE object_key = :key", key=object_key)
    return None if row is None else _upload(row)


def _upload(row: Mapping[str, Any]) -> Upload:
    values = dict(row)
    values["errors"] = _json_value(values["errors"], [])
    values["outcome"] = _json_value(values["outcome"], {})
    return Upload(**values)


def _json_value(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, (str, bytes)):
        return json.loads(value)
    return value


# --- processing ------------------------------------------------------------------------------


class _Superseded(Exception):
    """Another delivery of the same event moved the upload on; this run stops."""


@dataclass
class _Run:
    upload: Upload
    rows_done: int
    error_count: int
    reader: _CountingReader


def process_upload(
    db: Database,
    store: ObjectStore,
    object_key: str,
    *,
    apply_chunk: ChunkApplier,
    chunk_size: int = 5000,
    max_errors_kept: int = 1000,
    on_finish: FinishHook | None = None,
) -> Upload:
    """Ingest the uploaded object `object_key` (see the module docstring); the upload as it
    ends. `apply_chunk(tx, upload, [(line, record), ...])` writes one chunk's valid records in
    the chunk's transaction; `on_finish(tx, upload)` runs in the transaction that marks the
    upload `done` or `failed` (receipts, audit). UploadNotFoundError when no upload owns the
    key."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    logger = log.get_logger("hybrid.ingest.uploads")
    upload = _start(db, object_key)
    if upload.status in FINAL_STATUSES:
        logger.info("upload already processed", upload_id=upload.id, status=upload.status)
        return upload
    from hybrid.storage.port import ObjectNotFoundError

    try:
        try:
            stream = store.open_stream(object_key)
        except ObjectNotFoundError:
            missing = {"line": 0, "error": MISSING_OBJECT}
            return _finish(
                db,
                upload,
                upload.rows_done,
                failure=MISSING_OBJECT,
                error=missing,
                on_finish=on_finish,
            )
        with closing(stream):
            run = _Run(upload, upload.rows_done, len(upload.errors), _CountingReader(stream))
            failure, error = _ingest(db, run, apply_chunk, chunk_size, max_errors_kept)
        finished = _finish(
            db,
            upload,
            run.rows_done,
            bytes_read=run.reader.count,
            failure=failure,
            error=error,
            on_finish=on_finish,
        )
    except _Superseded:
        logger.info("upload taken over by another delivery", upload_id=upload.id)
        return _current(db, upload.id)
    logger.info(
        "upload processed",
        upload_id=finished.id,
        status=finished.status,
        rows=finished.rows_done,
        accepted=finished.accepted,
        rejected=finished.rejected,
        bytes_read=finished.bytes_read,
    )
    return finished


def _start(db: Database, object_key: str) -> Upload:
    with db.transaction() as tx:
        row = tx.one(
            f"SELECT {_COLUMNS} FROM file_uploads WHERE object_key = :key FOR UPDATE",
            key=object_key,
        )
        if row is None:
            raise UploadNotFoundError()
        upload = _upload(row)
        if upload.status in FINAL_STATUSES or upload.status == "processing":
            return upload
        row = tx.one(
            "UPDATE file_uploads SET status = 'processing', updated_at = now() WHERE id = :id "
            f"RETURNING {_COLUMNS}",
            id=upload.id,
        )
        assert row is not None
        return _upload(row)


def _ingest(
    db: Database,
    run: _Run,
    apply_chunk: ChunkApplier,
    chunk_size: int,
    max_errors_kept: int,
) -> tuple[str | None, dict[str, Any] | None]:
    """Apply the chunks after `rows_done`. Returns the failure reason (None when the file was
    read to its end) and the error entry to add for it, if any."""
    upload = run.upload
    source = io.BufferedReader(run.reader, buffer_size=STREAM_BUFFER_BYTES)
    items = iter_file_records(
        source,
        fmt=upload.format,  # type: ignore[arg-type]
        compression=upload.compression,  # type: ignore[arg-type]
    )
    skip = run.rows_done
    chunk: list[ParsedItem] = []
    fatal: ParsedItem | None = None
    try:
        for item in items:
            if item.fatal:
                fatal = item
                break
            if skip:
                skip -= 1
                continue
            chunk.append(item)
            if len(chunk) >= chunk_size:
                _commit_chunk(db, run, chunk, apply_chunk, max_errors_kept)
                chunk = []
        if chunk:
            _commit_chunk(db, run, chunk, apply_chunk, max_errors_kept)
    except DomainError as exc:
        return _short(str(exc)), None
    finally:
        items.close()
    if fatal is not None:
        reason = _short(fatal.error or "the file cannot be read")
        error: dict[str, Any] = {"line": fatal.line, "error": reason}
        return reason, error if run.error_count < max_errors_kept else None
    return None, None


def _commit_chunk(
    db: Database,
    run: _Run,
    chunk: list[ParsedItem],
    apply_chunk: ChunkApplier,
    max_errors_kept: int,
) -> None:
    from hybrid.ingest.models import validate_records

    lines = [item.line for item in chunk if item.raw is not None]
    raws = [item.raw for item in chunk if item.raw is not None]
    valid, rejections = validate_records(raws)
    records = [(lines[index], record) for index, record in valid]
    errors = [(item.line, item.error or "unreadable") for item in chunk if item.raw is None]
    errors.extend((lines[r.index], _rejection_text(r.errors)) for r in rejections)
    errors.sort(key=lambda error: error[0])
    with db.transaction() as tx:
        state = _lock(tx, run.upload.id, run.rows_done)
        counts = _counts(apply_chunk(tx, run.upload, records)) if records else {}
        outcome = {
            key: int(state["outcome"].get(key, 0)) + counts.get(key, 0) for key in OUTCOME_KEYS
        }
        kept = [{"line": line, "error": text} for line, text in errors][
            : max(0, max_errors_kept - run.error_count)
        ]
        tx.execute(
            "UPDATE file_uploads SET rows_done = rows_done + :rows, accepted = accepted + "
            ":accepted, rejected = rejected + :rejected, bytes_read = :bytes_read, "
            "errors = errors || CAST(:errors AS jsonb), outcome = CAST(:outcome AS jsonb), "
            "updated_at = now() WHERE id = :id",
            id=run.upload.id,
            rows=len(chunk),
            accepted=len(records),
            rejected=len(errors),
            bytes_read=run.reader.count,
            errors=json.dumps(kept),
            outcome=json.dumps(outcome),
        )
    run.rows_done += len(chunk)
    run.error_count += len(kept)


def _lock(tx: Transaction, upload_id: str, rows_done: int) -> dict[str, Any]:
    """Lock the upload's row and check that no other delivery moved it since this run did."""
    state = tx.one(
        "SELECT status, rows_done, outcome FROM file_uploads WHERE id = :id FOR UPDATE",
        id=upload_id,
    )
    if state is None or state["status"] != "processing" or state["rows_done"] != rows_done:
        raise _Superseded()
    state["outcome"] = _json_value(state["outcome"], {})
    return state


def _finish(
    db: Database,
    upload: Upload,
    rows_done: int,
    *,
    bytes_read: int | None = None,
    failure: str | None = None,
    error: dict[str, Any] | None = None,
    on_finish: FinishHook | None = None,
) -> Upload:
    """Mark the upload `done` (or `failed` with `failure` and its `error` entry)."""
    with db.transaction() as tx:
        _lock(tx, upload.id, rows_done)
        row = tx.one(
            "UPDATE file_uploads SET status = :status, failure = :failure, "
            "bytes_read = COALESCE(CAST(:bytes_read AS bigint), bytes_read), "
            "errors = errors || CAST(:errors AS jsonb), updated_at = now() "
            f"WHERE id = :id RETURNING {_COLUMNS}",
            id=upload.id,
            status="failed" if failure else "done",
            failure=failure,
            bytes_read=bytes_read,
            errors=json.dumps([error] if error else []),
        )
        assert row is not None
        finished = _upload(row)
        if on_finish is not None:
            on_finish(tx, finished)
    return finished


def _current(db: Database, upload_id: str) -> Upload:
    with db.transaction() as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM file_uploads WHERE id = :id", id=upload_id)
    if row is None:
        raise UploadNotFoundError()
    return _upload(row)


def _counts(outcome: Counts) -> dict[str, int]:
    values = outcome if isinstance(outcome, Mapping) else outcome.to_counts()
    return {key: int(values.get(key, 0)) for key in OUTCOME_KEYS}


def _rejection_text(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        parts.append(f"{where}: {message}" if where else message)
    return _short("; ".join(parts) or "invalid record")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


class _CountingReader(io.RawIOBase):
    """The object's byte stream, counting what was read (the upload's `bytes_read`)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        size = len(data)
        view[:size] = data
        self.count += size
        return size
