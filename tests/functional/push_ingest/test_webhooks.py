"""Signed webhooks: verified before anything else, stored once, secrets rotated without gaps."""

from __future__ import annotations

import json
import time

from hybrid.db import database

from .conftest import Call


def _source(push_env, tenant_id: str, *, key_path: str | None = None) -> tuple[str, str]:
    from hybrid.crypto import SecretBox
    from hybrid.sources import create_source
    from hybrid.webhooks import new_webhook_secret

    from .conftest import ENCRYPTION_KEY

    secret = new_webhook_secret()
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        source = create_source(
            tx,
            SecretBox(ENCRYPTION_KEY),
            tenant_id=tenant_id,
            name="shop",
            conflict_strategy="timestamp_priority",
            priority=0,
            webhooks=True,
            webhook_key_path=key_path,
            webhook_secret=secret,
        )
    return source.id, secret


def _deliver(
    push: Call,
    source_id: str,
    secret: str,
    payload: object,
    *,
    msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    at: int | None = None,
    signature: str | None = None,
):
    from hybrid.webhooks import sign

    raw = json.dumps(payload).encode()
    stamp = int(time.time()) if at is None else at
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature or sign(secret, msg_id, stamp, raw),
        "content-type": "application/json",
    }
    return push("POST", f"/api/v1/sync/push/webhook/{source_id}", raw_body=raw, headers=headers)


def test_signed_webhook_is_stored_once(push: Call, tenant, push_env) -> None:
    acme = tenant()
    source_id, secret = _source(push_env, acme["tenant_id"])
    first = _deliver(push, source_id, secret, {"order": 1, "total": "9.90"})
    assert first.status == 200, first.json
    assert first.json["duplicate"] is False
    again = _deliver(push, source_id, secret, {"order": 1, "total": "9.90"})
    assert again.json == {"receipt_id": first.json["receipt_id"], "duplicate": True}
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        rows = tx.rows("SELECT key, data FROM records WHERE tenant_id = :t", t=acme["tenant_id"])
    assert rows == [
        {"key": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "data": {"order": 1, "total": "9.90"}}
    ]


def test_replay_is_caught_by_postgresql_when_redis_forgot(
    push: Call, tenant, push_env, endpoints
) -> None:
    from hybrid.cache import redis_client

    acme = tenant()
    source_id, secret = _source(push_env, acme["tenant_id"])
    first = _deliver(push, source_id, secret, {"a": 1})
    redis_client(endpoints.redis_url).flushdb()
    again = _deliver(push, source_id, secret, {"a": 1})
    assert again.json == {"receipt_id": first.json["receipt_id"], "duplicate": True}


def test_key_path_names_the_record(push: Call, tenant, push_env) -> None:
    acme = tenant()
    source_id, secret = _source(push_env, acme["tenant_id"], key_path="order.id")
    result = _deliver(push, source_id, secret, {"order": {"id": "A-17"}})
    assert result.status == 200
    missing = _deliver(push, source_id, secret, {"order": {}}, msg_id="msg_other")
    assert missing.status == 422


def test_bad_signature_old_timestamp_or_unknown_source_are_refused(
    push: Call, tenant, push_env
) -> None:
    acme = tenant()
    source_id, secret = _source(push_env, acme["tenant_id"])
    forged = _deliver(push, source_id, secret, {"a": 1}, signature="v1,Zm9yZ2VkIHNpZ25hdHVyZQ==")
    assert forged.status == 401
    stale = _deliver(push, source_id, secret, {"a": 1}, at=int(time.time()) - 301)
    assert stale.status == 401
    unknown = _deliver(push, "src_0000000000000000", secret, {"a": 1})
    assert unknown.status == 404
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM records") == 0
    assert secret not in forged.body.decode() + stale.body.decode()


def test_rotation_keeps_the_previous_secret_valid(push: Call, tenant, push_env) -> None:
    from hybrid.crypto import SecretBox
    from hybrid.sources import get_source, rotate_webhook_secret
    from hybrid.webhooks import new_webhook_secret

    from .conftest import ENCRYPTION_KEY

    acme = tenant()
    source_id, old = _source(push_env, acme["tenant_id"])
    new = new_webhook_secret()
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        source = get_source(tx, source_id, tenant_id=acme["tenant_id"])
        rotate_webhook_secret(tx, SecretBox(ENCRYPTION_KEY), source, new)
    assert _deliver(push, source_id, old, {"n": 1}, msg_id="msg_old").status == 200
    assert _deliver(push, source_id, new, {"n": 2}, msg_id="msg_new").status == 200
