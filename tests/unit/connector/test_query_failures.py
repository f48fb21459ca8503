"""How query errors become statuses and codes (PROTOCOL.md), without SQL or values."""

from __future__ import annotations

import pytest

from connector.pagetoken import PageTokenError
from connector.service import QueryFailure, failure_from
from connector.sources.errors import (
    LimitExceededError,
    PlanRejectedError,
    QueryFailedError,
    SourceUnavailableError,
    UnsafeSourceError,
)
from connector.sqlguard import QueryRejectedError
from hybrid.masking import Finding, MaskingPolicyError, PiiLeakError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (QueryRejectedError("table not allowed: public.secrets"), 422, "query_rejected"),
        (PlanRejectedError("the server's plan reads system objects"), 422, "query_rejected"),
        (SourceUnavailableError("cannot connect"), 503, "source_unavailable"),
        (LimitExceededError("time", 1000), 504, "timeout"),
        (LimitExceededError("bytes", 1000), 422, "result_too_large"),
        (QueryFailedError("42703", 'column "x" does not exist'), 422, "query_failed"),
        (PageTokenError("page_token: malformed"), 422, "bad_page_token"),
        (MaskingPolicyError("unknown policy"), 422, "bad_masking"),
        (PiiLeakError([Finding("phone", "$[0].note")]), 422, "pii_detected"),
        (UnsafeSourceError(("role r: is a superuser",)), 503, "source_unsafe"),
        (RuntimeError("boom 13800138000"), 500, "internal"),
    ],
)
def test_failures_map_to_protocol_statuses(error: Exception, status: int, code: str) -> None:
    failure = failure_from(error)
    assert (failure.status, failure.code) == (status, code)
    assert "13800138000" not in failure.message
    assert set(failure.to_error()) <= {"code", "message", "sqlstate"}


def test_unavailable_sources_say_when_to_retry() -> None:
    assert failure_from(SourceUnavailableError("down")).retry_after == 5
    failed = failure_from(QueryFailedError("22P02", "details withheld"))
    assert failed.to_error() == {
        "code": "query_failed",
        "message": "details withheld",
        "sqlstate": "22P02",
    }
    same = QueryFailure(404, "unknown_source", "no source of that name")
    assert failure_from(same) is same
