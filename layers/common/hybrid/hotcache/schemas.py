"""Request bodies of cache-sync (unknown fields are rejected)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
)

from hybrid.connectors.protocol import MAX_PARAMS

MAX_SQL_CHARS = 20_000
MAX_AGE_S = 86_400

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# bool first: in strict mode it is never taken for an int, but order keeps the intent clear.
Param = Union[StrictBool, StrictInt, FiniteFloat, StrictStr, None]  # noqa: UP007 - py3.10 runtime


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class QueryCacheRequest(StrictModel):
    connector_id: Identifier
    source: Identifier
    sql: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SQL_CHARS)]
    params: list[Param] = Field(default_factory=list, max_length=MAX_PARAMS)
    max_age: Annotated[int, Field(ge=0, le=MAX_AGE_S)] = 300

    @field_validator("sql")
    @classmethod
    def _not_blank(cls, sql: str) -> str:
        if not sql.strip():
            raise ValueError("must not be blank")
        return sql


class InvalidateRequest(StrictModel):
    """Nothing: every entry of the tenant; `connector_id`: that connector's; `fingerprint`:
    one query's (both: that query, if it is that connector's)."""

    connector_id: Identifier | None = None
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
