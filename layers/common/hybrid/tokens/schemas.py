"""Request bodies and queries of token-pick, validated with pydantic (422 on failure)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

POOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LEASE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:tok_[0-9a-f]{16}:[0-9a-f]{24}$"
DEFAULT_LEASE_MS = 60_000
MAX_WAIT_MS = 20_000

PoolName = Annotated[str, StringConstraints(pattern=POOL_PATTERN)]
Limit = Annotated[int, Field(ge=1, le=100_000_000)]


class AddTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    pool: PoolName = "default"
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    secret: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    rpm: Limit
    rph: Limit | None = None
    rpd: Limit | None = None
    concurrency: Annotated[int, Field(ge=1, le=10_000)]
    rotate_after: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    tier: Annotated[int, Field(ge=0, le=1000)] = 0
    weight: Annotated[int, Field(ge=1, le=1000)] = 1

    @model_validator(mode="after")
    def _secret_is_text(self) -> AddTokenRequest:
        if "\x00" in self.secret or "\x00" in self.name:
            raise ValueError("name and secret must not contain NUL")
        return self

    def limits(self) -> dict[str, int]:
        """rph and rpd default to what rpm alone allows (still limits, never unlimited)."""
        rph = self.rph if self.rph is not None else self.rpm * 60
        rpd = self.rpd if self.rpd is not None else rph * 24
        return {"rpm": self.rpm, "rph": rph, "rpd": rpd, "concurrency": self.concurrency}


class PutPoolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    health_url: (
        Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)] | None
    ) = None
    alert_tenant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class PickRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    pool: PoolName = "default"
    wait_ms: Annotated[int, Field(ge=0, le=MAX_WAIT_MS)] = 0
    lease_ms: Annotated[int, Field(ge=1_000, le=600_000)] = DEFAULT_LEASE_MS


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    lease_id: Annotated[str, StringConstraints(pattern=LEASE_PATTERN)]
    outcome: Literal["success", "failure", "rate_limited"]
    latency_ms: Annotated[float, Field(ge=0, le=3_600_000, allow_inf_nan=False)]
    retry_after_s: Annotated[int, Field(ge=0, le=86_400)] | None = None


class PauseHighRiskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    threshold: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.5
    pool: PoolName | None = None


class ListTokensQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: PoolName | None = None
