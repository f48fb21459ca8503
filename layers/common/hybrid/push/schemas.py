"""Request bodies of push-ingest. Records are validated one by one later (a bad record rejects
only itself), so the batch model only checks the envelope."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_RECORDS = 5000

SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Strategy = Literal[
    "timestamp_priority", "source_priority", "keep_both", "manual_review", "merge_fields"
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PushBatchRequest(StrictModel):
    source: SourceName
    entity: SourceName | None = Field(
        default=None, description="the record collection; defaults to the source name"
    )
    records: list[Any] = Field(min_length=1, max_length=MAX_RECORDS)
    conflict_strategy: Strategy | None = None
    atomic: bool = False


class FileUploadRequest(StrictModel):
    source: SourceName
    entity: SourceName | None = None
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    format: Literal["csv", "ndjson", "json"]
    compression: Literal["none", "gzip"] = "none"
    size: Annotated[int, Field(ge=0, le=50 * 1024**3)] | None = None
    conflict_strategy: Strategy | None = None


class ResolveConflictRequest(StrictModel):
    resolution: Literal["keep_current", "take_incoming", "merge"]
    data: dict[str, Any] | None = None


class ConflictQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["PENDING", "RESOLVED", "AUTO_RESOLVED", "KEPT_BOTH"] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    before: Annotated[str, StringConstraints(max_length=64)] | None = None
