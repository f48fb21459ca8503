"""admin-api routes. Every change writes its audit entry in the same transaction."""

from __future__ import annotations

from typing import Any

from hybrid import audit, sources, tenants
from hybrid.admin.app import AdminServices
from hybrid.admin.schemas import (
    AuditQuery,
    CreateApiKeyRequest,
    CreateConnectorRequest,
    CreateSourceRequest,
    CreateTenantRequest,
    QuotaRequest,
)
from hybrid.auth import Principal, require
from hybrid.auth import store as keys
from hybrid.connectors import registry
from hybrid.errors import AccessDeniedError
from hybrid.http import Response, Router, UnprocessableError, json_response, no_content
from hybrid.http.router import Call

router = Router()

# Shown-once secrets must not linger in caches.
NO_STORE = {"Cache-Control": "no-store"}


def _tenant_scope(principal: Principal, tenant_id: str) -> str:
    """The tenant the caller may act on; another tenant's id reads as not found."""
    if not principal.can_access(tenant_id):
        raise tenants.TenantNotFoundError()
    return tenant_id


def _audit(call: Call[AdminServices], tx: Any, **entry: Any) -> None:
    audit.record(tx, actor=call.principal.actor, request_id=call.request.request_id, **entry)


@router.post("/api/v1/admin/tenants")
@require(operator=True)
def create_tenant(call: Call[AdminServices]) -> Response:
    body = call.request.model(CreateTenantRequest)
    with call.services.write() as tx:
        tenant = tenants.create_tenant(tx, body.name)
        _audit(
            call,
            tx,
            tenant_id=tenant.id,
            action="tenant.create",
            target_type="tenant",
            target_id=tenant.id,
            details={"name": tenant.name},
        )
    return json_response(tenant.to_public(), 201)


@router.get("/api/v1/admin/tenants")
@require(operator=True)
def list_tenants(call: Call[AdminServices]) -> Response:
    with call.services.read() as tx:
        found = tenants.list_tenants(tx)
    return json_response({"tenants": [tenant.to_public() for tenant in found]})


@router.get("/api/v1/admin/tenants/{tenant_id}")
@require("admin")
def get_tenant(call: Call[AdminServices]) -> Response:
    tenant_id = _tenant_scope(call.principal, call.params["tenant_id"])
    with call.services.read() as tx:
        tenant = tenants.get_tenant(tx, tenant_id)
    return json_response(tenant.to_public())


@router.post("/api/v1/admin/tenants/{tenant_id}/api-keys")
@require("admin")
def create_api_key(call: Call[AdminServices]) -> Response:
    tenant_id = _tenant_scope(call.principal, call.params["tenant_id"])
    body = call.request.model(CreateApiKeyRequest)
    with call.services.write() as tx:
        tenants.get_tenant(tx, tenant_id)
        api_key, token = keys.create_api_key(
            tx, tenant_id=tenant_id, name=body.name, scopes=body.scopes
        )
        _audit(
            call,
            tx,
            tenant_id=tenant_id,
            action="api_key.create",
            target_type="api_key",
            target_id=api_key.id,
            details={"name": api_key.name, "scopes": list(api_key.scopes)},
        )
    return json_response({**api_key.to_public(), "key": token.token}, 201, NO_STORE)


@router.get("/api/v1/admin/tenants/{tenant_id}/api-keys")
@require("admin")
def list_api_keys(call: Call[AdminServices]) -> Response:
    tenant_id = _tenant_scope(call.principal, call.params["tenant_id"])
    with call.services.read() as tx:
        tenants.get_tenant(tx, tenant_id)
        found = keys.list_api_keys(tx, tenant_id)
    return json_response({"api_keys": [api_key.to_public() for api_key in found]})


@router.delete("/api/v1/admin/api-keys/{key_id}")
@require("admin")
def revoke_api_key(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    owner = None if principal.is_operator else principal.tenant_id
    with call.services.write() as tx:
        api_key = keys.revoke_api_key(tx, call.params["key_id"], tenant_id=owner)
        _audit(
            call,
            tx,
            tenant_id=api_key.tenant_id,
            action="api_key.revoke",
            target_type="api_key",
            target_id=api_key.id,
            details={"name": api_key.name},
        )
    return no_content()


@router.post("/api/v1/admin/connectors")
@require("admin")
def create_connector(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    body = call.request.model(CreateConnectorRequest)
    tenant_id = _connector_owner(principal, body.tenant_id)
    sources = [registry.Source(s.name, s.engine, s.description) for s in body.sources]
    with call.services.write() as tx:
        tenants.get_tenant(tx, tenant_id)
        connector, secret = registry.create_connector(
            tx,
            call.services.secret_box,
            tenant_id=tenant_id,
            name=body.name,
            transport=body.transport,
            endpoint=body.endpoint,
            sources=sources,
        )
        _audit(
            call,
            tx,
            tenant_id=tenant_id,
            action="connector.create",
            target_type="connector",
            target_id=connector.id,
            details={"name": connector.name, "transport": connector.transport},
        )
    return json_response({**connector.to_public(), "secret": secret}, 201, NO_STORE)


@router.get("/api/v1/admin/connectors")
@require("admin")
def list_connectors(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    owner = call.request.query_value("tenant_id") if principal.is_operator else principal.tenant_id
    with call.services.read() as tx:
        found = registry.list_connectors(tx, tenant_id=owner)
    return json_response({"connectors": [connector.to_public() for connector in found]})


@router.get("/api/v1/admin/connectors/{connector_id}")
@require("admin")
def get_connector(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    owner = None if principal.is_operator else principal.tenant_id
    with call.services.read() as tx:
        connector = registry.get_connector(tx, call.params["connector_id"], tenant_id=owner)
    return json_response(connector.to_public())


@router.delete("/api/v1/admin/connectors/{connector_id}")
@require("admin")
def delete_connector(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    owner = None if principal.is_operator else principal.tenant_id
    with call.services.write() as tx:
        connector = registry.delete_connector(tx, call.params["connector_id"], tenant_id=owner)
        _audit(
            call,
            tx,
            tenant_id=connector.tenant_id,
            action="connector.delete",
            target_type="connector",
            target_id=connector.id,
            details={"name": connector.name},
        )
    return no_content()


@router.put("/api/v1/admin/tenants/{tenant_id}/quota")
@require(operator=True)
def set_quota(call: Call[AdminServices]) -> Response:
    tenant_id = call.params["tenant_id"]
    body = call.request.model(QuotaRequest)
    with call.services.write() as tx:
        quota = tenants.set_quota(
            tx,
            tenant_id,
            daily_records=body.daily_records,
            monthly_records=body.monthly_records,
            rpm=body.rpm,
        )
        _audit(
            call,
            tx,
            tenant_id=tenant_id,
            action="quota.update",
            target_type="tenant",
            target_id=tenant_id,
            details=body.model_dump(),
        )
    return json_response(quota.to_public())


@router.get("/api/v1/admin/tenants/{tenant_id}/quota")
@require("admin")
def get_quota(call: Call[AdminServices]) -> Response:
    tenant_id = _tenant_scope(call.principal, call.params["tenant_id"])
    with call.services.read() as tx:
        quota = tenants.get_quota(tx, tenant_id)
    return json_response(quota.to_public())


@router.get("/api/v1/admin/audit")
@require("admin")
def search_audit(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    query = call.request.query_model(AuditQuery)
    if query.tenant_id is not None and not principal.is_operator:
        raise AccessDeniedError("only operators may choose the tenant")
    if query.since and query.until and query.since >= query.until:
        raise UnprocessableError("`since` must be before `until`")
    tenant_id = query.tenant_id if principal.is_operator else principal.tenant_id
    with call.services.read() as tx:
        entries = audit.search(
            tx,
            tenant_id=tenant_id,
            action=query.action,
            since=query.since,
            until=query.until,
            before_id=query.before,
            limit=query.limit,
        )
    next_before = str(entries[-1].id) if len(entries) == query.limit else None
    return json_response(
        {"entries": [entry.to_public() for entry in entries], "next_before": next_before}
    )


@router.post("/api/v1/admin/sources")
@require("admin")
def create_source(call: Call[AdminServices]) -> Response:
    """A tenant's data source; with `webhooks`, its Standard Webhooks secret is shown once."""
    principal: Principal = call.principal
    if principal.tenant_id is None:
        raise AccessDeniedError("sources belong to a tenant: use a tenant admin key")
    body = call.request.model(CreateSourceRequest)
    from hybrid.webhooks import new_webhook_secret

    secret = new_webhook_secret() if body.webhooks else None
    with call.services.write() as tx:
        source = sources.create_source(
            tx,
            call.services.secret_box,
            tenant_id=principal.tenant_id,
            name=body.name,
            conflict_strategy=body.conflict_strategy,
            priority=body.priority,
            webhooks=body.webhooks,
            webhook_key_path=body.webhook_key_path,
            webhook_secret=secret,
        )
        _audit(
            call,
            tx,
            tenant_id=principal.tenant_id,
            action="source.create",
            target_type="source",
            target_id=source.id,
            details={"name": source.name, "webhooks": body.webhooks},
        )
    shown = {"webhook_secret": secret} if secret else {}
    return json_response({**source.to_public(), **shown}, 201, NO_STORE)


@router.get("/api/v1/admin/sources")
@require("admin")
def list_sources(call: Call[AdminServices]) -> Response:
    principal: Principal = call.principal
    if principal.tenant_id is None:
        raise AccessDeniedError("sources belong to a tenant: use a tenant admin key")
    with call.services.read() as tx:
        found = sources.list_sources(tx, principal.tenant_id)
    return json_response({"sources": [source.to_public() for source in found]})


@router.post("/api/v1/admin/sources/{source_id}/webhook-secret")
@require("admin")
def rotate_webhook_secret(call: Call[AdminServices]) -> Response:
    """A new webhook secret, shown once; the previous one stays valid until the next rotation."""
    principal: Principal = call.principal
    from hybrid.webhooks import new_webhook_secret

    secret = new_webhook_secret()
    with call.services.write() as tx:
        source = sources.get_source(tx, call.params["source_id"], tenant_id=principal.tenant_id)
        sources.rotate_webhook_secret(tx, call.services.secret_box, source, secret)
        _audit(
            call,
            tx,
            tenant_id=source.tenant_id,
            action="source.rotate_webhook_secret",
            target_type="source",
            target_id=source.id,
            details={"name": source.name},
        )
    return json_response({"source_id": source.id, "webhook_secret": secret}, 201, NO_STORE)


def _connector_owner(principal: Principal, requested: str | None) -> str:
    if principal.is_operator:
        if requested is None:
            raise UnprocessableError(
                "operators must name the tenant",
                errors=[{"loc": ["tenant_id"], "msg": "Field required", "type": "missing"}],
            )
        return requested
    if requested is not None and requested != principal.tenant_id:
        raise tenants.TenantNotFoundError()
    assert principal.tenant_id is not None
    return principal.tenant_id
