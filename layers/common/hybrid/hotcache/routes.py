"""cache-sync routes: the cached query API, its invalidation, and the 5-minute refresh."""

from __future__ import annotations

from typing import Any

from hybrid import audit
from hybrid.auth import require
from hybrid.connectors import registry
from hybrid.events.context import InvocationContext
from hybrid.hotcache.app import CacheServices
from hybrid.hotcache.errors import QueryRefusedError, SourceUnavailableError
from hybrid.hotcache.flight import QuerySpec, serve
from hybrid.hotcache.refresh import run_refresh
from hybrid.hotcache.schemas import InvalidateRequest, QueryCacheRequest
from hybrid.hotcache.store import CacheStore
from hybrid.http import Response, Router, json_response
from hybrid.http.problem import ProblemError, ServiceUnavailableError, UnprocessableError
from hybrid.http.response import JSON_CONTENT_TYPE
from hybrid.http.router import Call
from hybrid.problems import DOMAIN_ERROR_MAP

router = Router()
# Left of the invocation when the refresh must be done (its writes and the summary).
SAFETY_MARGIN_S = 8.0


def _refused(exc: Exception) -> ProblemError:
    code = getattr(exc, "code", "query_refused")
    return UnprocessableError(str(exc), errors=[{"loc": ["sql"], "msg": str(exc), "type": code}])


def _unavailable(exc: Exception) -> ProblemError:
    return ServiceUnavailableError(str(exc), retry_after=getattr(exc, "retry_after", 30))


ERROR_MAP = {
    **DOMAIN_ERROR_MAP,
    QueryRefusedError: _refused,
    SourceUnavailableError: _unavailable,
}


@router.post("/api/v1/hybrid/query")
@require("query:read")
def query(call: Call[CacheServices]) -> Response:
    """The query's result from the cache when it is fresh enough for `max_age`, otherwise
    from the connector (once, however many ask at the same time); a cached copy when the
    connector or its source is down."""
    body = call.request.model(QueryCacheRequest)
    spec = QuerySpec(
        connector_id=body.connector_id,
        source=body.source,
        sql=body.sql,
        params=tuple(body.params),
        max_age=body.max_age,
    )
    served = serve(call.services, call.principal.tenant_id, spec, call.services.policy)
    return Response(
        200,
        served.body(),
        {
            "Content-Type": JSON_CONTENT_TYPE,
            "X-Cache": served.status,
            "Age": str(served.age_s),
            "Cache-Control": "private",
        },
    )


@router.delete("/api/v1/hybrid/query/cache")
@require("admin")
def invalidate(call: Call[CacheServices]) -> Response:
    """Drop cached results: all of the tenant's, one connector's, or one query's."""
    body = (
        call.request.model(InvalidateRequest) if call.request.body.strip() else InvalidateRequest()
    )
    tenant_id = call.principal.tenant_id
    if body.connector_id is not None:
        with call.services.read() as tx:
            registry.get_connector(tx, body.connector_id, tenant_id=tenant_id)
    removed = CacheStore(call.services.redis, tenant_id).invalidate(
        connector_id=body.connector_id, fp=body.fingerprint
    )
    scope = "query" if body.fingerprint else "connector" if body.connector_id else "tenant"
    with call.services.write() as tx:
        audit.record(
            tx,
            tenant_id=tenant_id,
            actor=call.principal.actor,
            action="query_cache.invalidate",
            target_type="query_cache",
            target_id=body.fingerprint or body.connector_id,
            request_id=call.request.request_id,
            details={"scope": scope, "removed": removed},
        )
    return json_response({"removed": removed, "scope": scope})


def handle_timer(event: Any, services: CacheServices, ctx: InvocationContext) -> dict[str, Any]:
    seconds = ctx.remaining_ms() / 1000 - SAFETY_MARGIN_S
    return run_refresh(services, seconds=seconds, policy=services.policy)
