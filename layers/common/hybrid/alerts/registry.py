"""A tenant's notification channels. The whole config is sealed (AES-GCM, it holds robot keys,
tokens, webhook secrets, SMTP passwords); a public view without the secret fields is kept for
listing. `type` is the API's (wecom, email, webhook, dingtalk); an email channel sends through
SMTP, or through Tencent SES with ``provider: ses``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth.keys import new_id
from hybrid.crypto import SecretBox
from hybrid.db import IntegrityError, Transaction
from hybrid.errors import ResourceExistsError, ResourceNotFoundError, ValidationFailedError

TYPES = ("wecom", "email", "webhook", "dingtalk")
SECRET_FIELDS = frozenset({"key", "access_token", "secret", "password", "url"})


class ChannelNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("channel not found")


class ChannelNameTakenError(ResourceExistsError):
    def __init__(self) -> None:
        super().__init__("a channel with this name already exists")


@dataclass(frozen=True)
class ChannelRecord:
    id: str
    tenant_id: str
    type: str
    name: str
    config_public: dict[str, Any]
    min_severity: str
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "config": self.config_public,
            "min_severity": self.min_severity,
            "created_at": self.created_at,
        }


def adapter_type(channel_type: str, config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The adapter (`hybrid.alerts.channels.build_channel`) type and config for a channel."""
    settings = dict(config)
    if channel_type == "email" and settings.pop("provider", "smtp") == "ses":
        return "ses", settings
    return channel_type, settings


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without its secrets; a webhook URL shows only its scheme and host."""
    shown: dict[str, Any] = {}
    for name, value in config.items():
        if name == "url" and isinstance(value, str):
            scheme, _, rest = value.partition("://")
            shown[name] = f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/…"
        elif name in SECRET_FIELDS:
            shown[name] = "***"
        else:
            shown[name] = value
    return shown


_COLUMNS = "id, tenant_id, type, name, config_public, min_severity, created_at"


def _record(row: dict[str, Any]) -> ChannelRecord:
    public = row["config_public"]
    return ChannelRecord(
        **{**row, "config_public": json.loads(public) if isinstance(public, str) else public}
    )


def create_channel(
    tx: Transaction,
    box: SecretBox,
    *,
    tenant_id: str,
    channel_type: str,
    name: str,
    config: Mapping[str, Any],
    min_severity: str,
) -> ChannelRecord:
    if channel_type not in TYPES:
        raise ValidationFailedError(f"type must be one of {', '.join(TYPES)}")
    channel_id = new_id("chn")
    try:
        row = tx.one(
            f"INSERT INTO alert_channels (id, tenant_id, type, name, config_sealed, config_public, "
            f"min_severity) VALUES (:id, :tenant_id, :type, :name, :sealed, "
            f"CAST(:public AS jsonb), :min_severity) RETURNING {_COLUMNS}",
            id=channel_id,
            tenant_id=tenant_id,
            type=channel_type,
            name=name,
            sealed=box.seal(json.dumps(dict(config)), owner=channel_id),
            public=json.dumps(public_config(config), ensure_ascii=False),
            min_severity=min_severity,
        )
    except IntegrityError as exc:
        if exc.constraint == "alert_channels_tenant_name":
            raise ChannelNameTakenError() from None
        raise
    assert row is not None
    return _record(row)


def list_channels(tx: Transaction, tenant_id: str) -> list[ChannelRecord]:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM alert_channels WHERE tenant_id = :tenant_id "
        "AND deleted_at IS NULL ORDER BY created_at, id",
        tenant_id=tenant_id,
    )
    return [_record(row) for row in rows]


def get_channel(tx: Transaction, channel_id: str, *, tenant_id: str) -> ChannelRecord:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM alert_channels WHERE id = :id AND tenant_id = :tenant_id "
        "AND deleted_at IS NULL",
        id=channel_id,
        tenant_id=tenant_id,
    )
    if row is None:
        raise ChannelNotFoundError()
    return _record(row)


def channel_config(tx: Transaction, box: SecretBox, channel: ChannelRecord) -> dict[str, Any]:
    """The full config, secrets included, for sending; never returned by an API."""
    sealed = tx.scalar("SELECT config_sealed FROM alert_channels WHERE id = :id", id=channel.id)
    config: dict[str, Any] = json.loads(box.open(bytes(sealed), owner=channel.id))
    return config


def delete_channel(tx: Transaction, channel_id: str, *, tenant_id: str) -> None:
    deleted = tx.execute(
        "UPDATE alert_channels SET deleted_at = now() WHERE id = :id AND tenant_id = :tenant_id "
        "AND deleted_at IS NULL",
        id=channel_id,
        tenant_id=tenant_id,
    )
    if not deleted:
        raise ChannelNotFoundError()
