"""token-pick routes (internal key only): pick and release leases, manage pools and tokens; and
the timer's health tick."""

from __future__ import annotations

import re
from typing import Any

from hybrid.auth import require_internal
from hybrid.events.context import InvocationContext
from hybrid.http import (
    NotFoundError,
    RateLimitedError,
    Response,
    Router,
    json_response,
    no_content,
)
from hybrid.http.router import Call
from hybrid.problems import DOMAIN_ERROR_MAP
from hybrid.tokens import admin, leasing
from hybrid.tokens.app import TokenServices
from hybrid.tokens.errors import TokensExhaustedError
from hybrid.tokens.health import run_health_tick
from hybrid.tokens.schemas import (
    POOL_PATTERN,
    AddTokenRequest,
    ListTokensQuery,
    PauseHighRiskRequest,
    PickRequest,
    PutPoolRequest,
    ReleaseRequest,
)

router = Router()


def _exhausted(exc: Exception) -> RateLimitedError:
    assert isinstance(exc, TokensExhaustedError)
    return RateLimitedError(str(exc), retry_after=exc.retry_after_s)


ERROR_MAP: dict[type[Exception], Any] = {**DOMAIN_ERROR_MAP, TokensExhaustedError: _exhausted}


@router.post("/api/v1/tokens/pick")
@require_internal()
def pick_token(call: Call[TokenServices]) -> Response:
    body = call.request.model(PickRequest)
    grant = leasing.pick(call.services, body.pool, lease_ms=body.lease_ms, wait_ms=body.wait_ms)
    return json_response(grant.to_public(), headers={"Cache-Control": "no-store"})


@router.post("/api/v1/tokens/release")
@require_internal()
def release_token(call: Call[TokenServices]) -> Response:
    body = call.request.model(ReleaseRequest)
    leasing.release(
        call.services,
        body.lease_id,
        body.outcome,
        latency_ms=body.latency_ms,
        retry_after_s=body.retry_after_s,
    )
    return no_content()


@router.post("/api/v1/tokens")
@require_internal(operator=True)
def add_token(call: Call[TokenServices]) -> Response:
    body = call.request.model(AddTokenRequest)
    token = admin.add_token(
        call.services,
        request_id=call.request.request_id,
        pool=body.pool,
        name=body.name,
        secret=body.secret,
        rotate_after=body.rotate_after,
        tier=body.tier,
        weight=body.weight,
        **body.limits(),
    )
    return json_response(token, 201)


@router.get("/api/v1/tokens")
@require_internal(operator=True)
def list_tokens(call: Call[TokenServices]) -> Response:
    query = call.request.query_model(ListTokensQuery)
    return json_response(
        {"tokens": admin.list_tokens(call.services, query.pool)},
        headers={"Cache-Control": "no-store"},
    )


@router.put("/api/v1/tokens/pools/{pool}")
@require_internal(operator=True)
def put_pool(call: Call[TokenServices]) -> Response:
    name = call.params["pool"]
    if not re.fullmatch(POOL_PATTERN, name):
        raise NotFoundError("token pool not found")
    body = call.request.model(PutPoolRequest)
    pool = admin.put_pool(
        call.services, name, health_url=body.health_url, alert_tenant_id=body.alert_tenant_id
    )
    return json_response(pool)


@router.post("/api/v1/tokens/{token_id}/pause")
@require_internal(operator=True)
def pause_token(call: Call[TokenServices]) -> Response:
    token = admin.set_enabled(
        call.services, call.params["token_id"], enabled=False, request_id=call.request.request_id
    )
    return json_response(token)


@router.post("/api/v1/tokens/{token_id}/resume")
@require_internal(operator=True)
def resume_token(call: Call[TokenServices]) -> Response:
    token = admin.set_enabled(
        call.services, call.params["token_id"], enabled=True, request_id=call.request.request_id
    )
    return json_response(token)


@router.post("/api/v1/tokens/pause-high-risk")
@require_internal(operator=True)
def pause_high_risk(call: Call[TokenServices]) -> Response:
    body = call.request.model(PauseHighRiskRequest)
    paused = admin.pause_high_risk(
        call.services,
        threshold=body.threshold,
        pool=body.pool,
        request_id=call.request.request_id,
    )
    return json_response({"threshold": body.threshold, "paused": paused})


def handle_timer(event: Any, services: TokenServices, ctx: InvocationContext) -> dict[str, Any]:
    return run_health_tick(services, remaining_ms=ctx.remaining_ms(), probe=services.token_probe())
