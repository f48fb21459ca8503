"""Request bodies of pull-trigger (unknown fields are rejected)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=129)]
Strategy = Literal[
    "timestamp_priority", "source_priority", "keep_both", "manual_review", "merge_fields"
]
Mode = Literal["incremental", "full"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CreateJobRequest(StrictModel):
    name: Name
    connector_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    table: Identifier
    cursor_column: Identifier | None = None
    key_columns: list[Identifier] = Field(min_length=1, max_length=8)
    mode: Mode = "incremental"
    schedule: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    masking: dict[str, Any] | None = None
    conflict_strategy: Strategy | None = None
    overlap_s: Annotated[int, Field(ge=0, le=7 * 86400)] = 60
    page_rows: Annotated[int, Field(ge=1, le=50_000)] = 5000


class UpdateJobRequest(StrictModel):
    """The settings a job may change; fields left out keep their value, and `schedule`,
    `masking` and `conflict_strategy` may be set to null to clear them."""

    name: Name | None = None
    schedule: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    masking: dict[str, Any] | None = None
    conflict_strategy: Strategy | None = None
    overlap_s: Annotated[int, Field(ge=0, le=7 * 86400)] | None = None
    page_rows: Annotated[int, Field(ge=1, le=50_000)] | None = None


class RunJobRequest(StrictModel):
    mode: Mode | None = None


class ExecutionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, Field(ge=1, le=200)] = 50
