"""status-probe routes: the tenant's links as the last probes left them, and their history."""

from __future__ import annotations

import base64
import functools
import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hybrid.auth import require
from hybrid.connectors import registry
from hybrid.events.context import InvocationContext
from hybrid.http import Response, Router, UnprocessableError, json_response
from hybrid.http.router import Call
from hybrid.probe import store
from hybrid.probe.runner import run_tick
from hybrid.probe.states import LinkState
from hybrid.problems import DOMAIN_ERROR_MAP
from hybrid.status.app import StatusServices

router = Router()
ERROR_MAP = dict(DOMAIN_ERROR_MAP)
P95_WINDOW = timedelta(hours=1)


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: Annotated[int, Field(ge=1, le=5000)] = 1000


def _source_view(name: str, state: LinkState | None) -> dict[str, Any]:
    state = state or LinkState()
    return {
        "name": name,
        "state": state.state,
        "latency_ms": state.latency_ms,
        "error": state.error,
        "since": state.since,
    }


@router.get("/api/v1/hybrid/status")
@require("status:read")
def get_status(call: Call[StatusServices]) -> Response:
    tenant_id = call.principal.tenant_id
    now = datetime.now(timezone.utc)
    with call.services.read() as tx:
        connectors = registry.list_connectors(tx, tenant_id=tenant_id)
        states = store.link_states(tx, tenant_id)
        p95 = store.latency_p95(tx, tenant_id, since=now - P95_WINDOW)
    body = []
    for connector in connectors:
        links = states.get(connector.id, {})
        own = links.get(store.CONNECTOR_LINK) or LinkState()
        body.append(
            {
                "id": connector.id,
                "name": connector.name,
                "transport": connector.transport,
                "state": own.state,
                "connected": own.state in ("connected", "degraded"),
                "latency_ms": own.latency_ms,
                "latency_p95_ms": p95.get(connector.id),
                "last_seen": own.last_ok_at,
                "since": own.since,
                "sources": [
                    _source_view(source.name, links.get(source.name))
                    for source in connector.sources
                ],
            }
        )
    return json_response({"generated_at": now, "connectors": body})


@router.get("/api/v1/hybrid/status/{connector_id}/history")
@require("status:read")
def get_history(call: Call[StatusServices]) -> Response:
    query = call.request.query_model(HistoryQuery)
    until = query.until or datetime.now(timezone.utc)
    since = query.since or until - timedelta(hours=24)
    if since > until:
        raise UnprocessableError("since must not be after until")
    with call.services.read() as tx:
        connector = registry.get_connector(
            tx, call.params["connector_id"], tenant_id=call.principal.tenant_id
        )
        samples = store.history(tx, connector.id, since=since, until=until, limit=query.limit)
    return json_response(
        {"connector_id": connector.id, "since": since, "until": until, "samples": samples}
    )


@router.get("/dashboard")
def dashboard(call: Call[StatusServices]) -> Response:
    """The operator's page: static, no data in it (it asks for a key and calls the APIs)."""
    page, policy = _dashboard()
    return Response(
        200,
        page,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": policy,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


@functools.cache
def _dashboard() -> tuple[bytes, str]:
    """The page and a Content-Security-Policy that allows exactly its own script and style."""
    page = (Path(__file__).parent / "dashboard.html").read_bytes()
    text = page.decode()
    hashes = {}
    for tag in ("script", "style"):
        body = text.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[tag] = f"'sha256-{digest}'"
    policy = (
        f"default-src 'none'; script-src {hashes['script']}; style-src {hashes['style']}; "
        "connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return page, policy


def handle_timer(event: Any, services: StatusServices, ctx: InvocationContext) -> dict[str, Any]:
    return run_tick(services)
