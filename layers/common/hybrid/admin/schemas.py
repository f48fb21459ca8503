"""Request bodies and query parameters of admin-api (unknown fields are rejected)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Scope = Literal["ingest:write", "status:read", "query:read", "jobs:write", "admin"]
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
OpaqueId = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}_[0-9a-f]{16}$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CreateTenantRequest(StrictModel):
    name: Name


class CreateApiKeyRequest(StrictModel):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=5)

    @field_validator("scopes")
    @classmethod
    def _unique(cls, scopes: list[str]) -> list[str]:
        if len(set(scopes)) != len(scopes):
            raise ValueError("scopes must not repeat")
        return scopes


class SourceSpec(StrictModel):
    name: SourceName
    engine: Literal["postgresql", "mysql"]
    description: Annotated[str, StringConstraints(max_length=500)] | None = None


class CreateConnectorRequest(StrictModel):
    name: Name
    transport: Literal["tunnel", "relay"]
    endpoint: (
        Annotated[
            str, StringConstraints(pattern=r"^https?://[^\s/@]+(:\d+)?(/\S*)?$", max_length=500)
        ]
        | None
    ) = None
    sources: list[SourceSpec] = Field(default_factory=list, max_length=50)
    tenant_id: OpaqueId | None = Field(
        default=None, description="operators only: the tenant that owns the connector"
    )

    @model_validator(mode="after")
    def _check(self) -> CreateConnectorRequest:
        if self.transport == "tunnel" and self.endpoint is None:
            raise ValueError("a tunnel connector needs an endpoint the cloud can call")
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("source names must be unique")
        return self


class QuotaRequest(StrictModel):
    daily_records: Annotated[int, Field(ge=0, le=10**12)] | None = None
    monthly_records: Annotated[int, Field(ge=0, le=10**13)] | None = None
    rpm: Annotated[int, Field(gt=0, le=1_000_000)] | None = None


class AuditQuery(BaseModel):
    """Query strings arrive as text, so this model converts (not strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Annotated[str, StringConstraints(max_length=100)] | None = None
    since: datetime | None = None
    until: datetime | None = None
    tenant_id: OpaqueId | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    before: Annotated[int, Field(ge=1)] | None = None

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("times must carry a zone (RFC 3339)")
        return value


class CreateSourceRequest(StrictModel):
    name: SourceName
    conflict_strategy: Literal[
        "timestamp_priority", "source_priority", "keep_both", "manual_review", "merge_fields"
    ] = "timestamp_priority"
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    webhooks: bool = False
    webhook_key_path: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,9}$")] | None
    ) = None
