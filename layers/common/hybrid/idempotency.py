"""Idempotency keys (Stripe / AWS Powertools style), recorded per tenant in PostgreSQL.

A request with a key first calls `begin`, which reserves the key in its own short transaction
(state `in_flight`, a random owner token, a lease). The request then does its work and calls
`complete` INSIDE its data transaction: the stored response commits together with the data, or
neither does. So a crash before the commit leaves no data and an in-flight reservation whose
lease runs out (a retry then takes it over, exactly once); a crash after the commit leaves a
completed record, and the retry gets the stored response back (`Replay`).

`complete` only succeeds for the current owner: a holder whose lease ran out and was taken
over gets `IdempotencyLeaseLostError`, its transaction rolls back, and nothing is applied twice.
All times come from the database clock.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybrid import log
from hybrid.db import Database, DatabaseError, Transaction
from hybrid.errors import DomainError

MAX_KEY_LENGTH = 255
DEFAULT_LEASE_SECONDS = 60
DEFAULT_RETENTION_HOURS = 24
_MAX_ATTEMPTS = 5
_COLUMNS = (
    "request_hash, state, owner, response_status, response_headers, response_body, "
    "expires_at <= now() AND (state = 'completed' OR locked_until <= now()) AS expired, "
    "locked_until <= now() AS lease_over, "
    "GREATEST(1, CEIL(EXTRACT(EPOCH FROM locked_until - now())))::integer AS wait_s"
)


class IdempotencyError(DomainError):
    """Base of the idempotency errors."""


class IdempotencyKeyError(IdempotencyError):
    """The Idempotency-Key header is not 1-255 printable ASCII characters (400)."""


class IdempotencyMismatchError(IdempotencyError):
    """The key was used with a different request (422)."""

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used with a different request")


class IdempotencyInFlightError(IdempotencyError):
    """A request with this key is still being processed (409 with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed")
        self.retry_after = max(1, retry_after)


class IdempotencyLeaseLostError(IdempotencyError):
    """The reservation's lease ran out and another request took the key over (409): the
    caller's transaction must roll back."""

    def __init__(self) -> None:
        super().__init__("the idempotency reservation was lost; the request was not applied")


@dataclass(frozen=True)
class Replay:
    """The stored response of the completed first request."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reservation:
    """The right to process the request; pass it to `complete` or `release`."""

    tenant_id: str
    scope: str
    key: str
    owner: str
    fingerprint: bytes
    retention_hours: int
    takeover: bool = False
    """True when an expired reservation of a crashed first attempt was taken over."""


def request_fingerprint(method: str, path: str, body: bytes) -> bytes:
    """SHA-256 over the method, path and raw body (length-prefixed, so unambiguous)."""
    digest = hashlib.sha256(b"idempotency-v1")
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def validate_key(key: str) -> str:
    """The key itself, or IdempotencyKeyError."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise IdempotencyKeyError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def begin(
    db: Database,
    *,
    tenant_id: str,
    scope: str,
    key: str,
    fingerprint: bytes,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
) -> Replay | Reservation:
    """Reserve `key` for this request, or return the first request's stored response.

    Raises IdempotencyKeyError, IdempotencyMismatchError (another request used the key) or
    IdempotencyInFlightError (the first request is still running; its lease has not ended).
    """
    validate_key(key)
    if not scope:
        raise ValueError("scope must not be empty")
    if lease_seconds < 1 or retention_hours < 1:
        raise ValueError("lease_seconds and retention_hours must be positive")
    if lease_seconds >= retention_hours * 3600:
        raise ValueError("the lease must be shorter than the retention")
    ident = {"tenant_id": tenant_id, "scope": scope, "key": key}
    timing = {"lease": lease_seconds, "retention": retention_hours}
    for _attempt in range(_MAX_ATTEMPTS):
        owner = secrets.token_hex(16)
        reservation = Reservation(tenant_id, scope, key, owner, fingerprint, retention_hours)
        with db.transaction() as tx:
            inserted = tx.one(
                "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, state, "
                "owner, locked_until, expires_at) VALUES (:tenant_id, :scope, :key, :hash, "
                "'in_flight', :owner, now() + CAST(:lease AS integer) * interval '1 second', "
                "now() + CAST(:retention AS integer) * interval '1 hour') "
                "ON CONFLICT (tenant_id, scope, key) DO NOTHING RETURNING owner",
                hash=fingerprint,
                owner=owner,
                **ident,
                **timing,
            )
            if inserted is not None:
                return reservation
            row = tx.one(
                f"SELECT {_COLUMNS} FROM idempotency_keys "
                "WHERE tenant_id = :tenant_id AND scope = :scope AND key = :key",
                **ident,
            )
            if row is None:  # released between the INSERT and the SELECT: try again
                continue
            if row["expired"]:
                if _take(tx, row, reservation, fingerprint, timing, reset=True):
                    return reservation
                continue
            if bytes(row["request_hash"]) != fingerprint:
                raise IdempotencyMismatchError()
            if row["state"] == "completed":
                return Replay(
                    status=int(row["response_status"]),
                    headers=_headers(row["response_headers"]),
                    body=bytes(row["response_body"] or b""),
                )
            if not row["lease_over"]:
                raise IdempotencyInFlightError(int(row["wait_s"]))
            # The first holder crashed: take its reservation over, exactly once.
            if _take(tx, row, reservation, fingerprint, timing, reset=False):
                return Reservation(
                    tenant_id, scope, key, owner, fingerprint, retention_hours, takeover=True
                )
        # Another request took it over first: re-read what it left.
    raise IdempotencyInFlightError(1)


def _take(
    tx: Transaction,
    row: Mapping[str, Any],
    reservation: Reservation,
    fingerprint: bytes,
    timing: Mapping[str, int],
    *,
    reset: bool,
) -> bool:
    """Compare-and-set the row to a new owner if it is still as read (expired / lease over)."""
    condition = (
        "expires_at <= now() AND (state = 'completed' OR locked_until <= now())"
        if reset
        else "state = 'in_flight' AND locked_until <= now()"
    )
    taken = tx.execute(
        "UPDATE idempotency_keys SET request_hash = :hash, state = 'in_flight', "
        "owner = :new_owner, locked_until = now() + CAST(:lease AS integer) * interval '1 second', "
        "response_status = NULL, response_headers = NULL, response_body = NULL, "
        "created_at = CASE WHEN :reset THEN now() ELSE created_at END, "
        "expires_at = now() + CAST(:retention AS integer) * interval '1 hour' "
        "WHERE tenant_id = :tenant_id AND scope = :scope AND key = :key "
        f"AND owner = :old_owner AND {condition}",
        hash=fingerprint,
        new_owner=reservation.owner,
        old_owner=row["owner"],
        reset=reset,
        tenant_id=reservation.tenant_id,
        scope=reservation.scope,
        key=reservation.key,
        **timing,
    )
    return taken == 1


def complete(
    tx: Transaction,
    reservation: Reservation,
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    """Store the response in the caller's data transaction; IdempotencyLeaseLostError if the
    reservation is no longer ours (let it propagate so the transaction rolls back)."""
    updated = tx.execute(
        "UPDATE idempotency_keys SET state = 'completed', response_status = :status, "
        "response_headers = CAST(:headers AS jsonb), response_body = :body, "
        "locked_until = now(), "
        "expires_at = now() + CAST(:retention AS integer) * interval '1 hour' "
        "WHERE tenant_id = :tenant_id AND scope = :scope AND key = :key "
        "AND owner = :owner AND state = 'in_flight'",
        status=status,
        headers=json.dumps(dict(headers), ensure_ascii=False),
        body=body,
        retention=reservation.retention_hours,
        tenant_id=reservation.tenant_id,
        scope=reservation.scope,
        key=reservation.key,
        owner=reservation.owner,
    )
    if updated != 1:
        raise IdempotencyLeaseLostError()


def release(db: Database, reservation: Reservation) -> bool:
    """Drop our in-flight reservation after a failure that wrote nothing, so a retry need not
    wait for the lease. Best effort: False when it was no longer ours or the database failed
    (the lease then runs out on its own)."""
    try:
        with db.transaction() as tx:
            deleted = tx.execute(
                "DELETE FROM idempotency_keys WHERE tenant_id = :tenant_id AND scope = :scope "
                "AND key = :key AND owner = :owner AND state = 'in_flight'",
                tenant_id=reservation.tenant_id,
                scope=reservation.scope,
                key=reservation.key,
                owner=reservation.owner,
            )
    except DatabaseError as exc:
        log.get_logger("hybrid.idempotency").warning(
            "idempotency release failed; the lease will expire", error_type=type(exc).__name__
        )
        return False
    return deleted == 1


def purge_expired(tx: Transaction, limit: int) -> int:
    """Delete up to `limit` records past their retention; the number deleted."""
    if limit < 1:
        return 0
    return tx.execute(
        "DELETE FROM idempotency_keys k USING ("
        " SELECT tenant_id, scope, key FROM idempotency_keys"
        " WHERE expires_at <= now() AND locked_until <= now()"
        " ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED) old "
        "WHERE k.tenant_id = old.tenant_id AND k.scope = old.scope AND k.key = old.key",
        limit=limit,
    )


def _headers(value: Any) -> dict[str, str]:
    loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    if not isinstance(loaded, dict):
        return {}
    return {str(name): str(header) for name, header in loaded.items()}
