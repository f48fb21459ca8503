"""Tenants and their record quotas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth.keys import new_id
from hybrid.db import IntegrityError, Transaction
from hybrid.errors import ResourceExistsError, ResourceNotFoundError


class TenantNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("tenant not found")


class TenantNameTakenError(ResourceExistsError):
    def __init__(self) -> None:
        super().__init__("a tenant with this name already exists")


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    status: str
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Quota:
    tenant_id: str
    daily_records: int | None
    monthly_records: int | None
    rpm: int | None
    updated_at: datetime | None

    def to_public(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "daily_records": self.daily_records,
            "monthly_records": self.monthly_records,
            "rpm": self.rpm,
            "updated_at": self.updated_at,
        }


def create_tenant(tx: Transaction, name: str) -> Tenant:
    try:
        row = tx.one(
            "INSERT INTO tenants (id, name) VALUES (:id, :name) "
            "RETURNING id, name, status, created_at",
            id=new_id("ten"),
            name=name,
        )
    except IntegrityError as exc:
        if exc.constraint == "tenants_name_unique":
            raise TenantNameTakenError() from None
        raise
    assert row is not None
    return Tenant(**row)


def get_tenant(tx: Transaction, tenant_id: str) -> Tenant:
    row = tx.one("SELECT id, name, status, created_at FROM tenants WHERE id = :id", id=tenant_id)
    if row is None:
        raise TenantNotFoundError()
    return Tenant(**row)


def list_tenants(tx: Transaction) -> list[Tenant]:
    rows = tx.rows("SELECT id, name, status, created_at FROM tenants ORDER BY created_at, id")
    return [Tenant(**row) for row in rows]


def set_quota(
    tx: Transaction,
    tenant_id: str,
    *,
    daily_records: int | None,
    monthly_records: int | None,
    rpm: int | None,
) -> Quota:
    get_tenant(tx, tenant_id)
    row = tx.one(
        "INSERT INTO tenant_quotas (tenant_id, daily_records, monthly_records, rpm) "
        "VALUES (:tenant_id, :daily, :monthly, :rpm) "
        "ON CONFLICT (tenant_id) DO UPDATE SET daily_records = EXCLUDED.daily_records, "
        "monthly_records = EXCLUDED.monthly_records, rpm = EXCLUDED.rpm, updated_at = now() "
        "RETURNING tenant_id, daily_records, monthly_records, rpm, updated_at",
        tenant_id=tenant_id,
        daily=daily_records,
        monthly=monthly_records,
        rpm=rpm,
    )
    assert row is not None
    return Quota(**row)


def get_quota(tx: Transaction, tenant_id: str) -> Quota:
    """The tenant's quota; no row means no limits have been set."""
    get_tenant(tx, tenant_id)
    row = tx.one(
        "SELECT tenant_id, daily_records, monthly_records, rpm, updated_at "
        "FROM tenant_quotas WHERE tenant_id = :tenant_id",
        tenant_id=tenant_id,
    )
    if row is None:
        return Quota(tenant_id, None, None, None, None)
    return Quota(**row)
