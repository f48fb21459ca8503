"""Standard Webhooks signatures (https://www.standardwebhooks.com), standard library only, so
the on-prem connector ships this module as it is.

A message carries `webhook-id`, `webhook-timestamp` (integer Unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256(secret, "id.timestamp.body")>`
entries, so a sender can sign with the old and the new secret while rotating. Secrets are
`whsec_` + base64 of the key bytes.

The reference implementation (`standardwebhooks` on PyPI) is not used at run time: it decodes the
body as text (a non-UTF-8 body raises UnicodeDecodeError), raises ValueError/binascii.Error on a
malformed signature entry, re-derives the signed timestamp from a float instead of signing the
header as sent, checks one secret at a time and reads the wall clock itself. This module does
the same HMAC over the raw bytes with a constant-time compare; the tests check it against the
reference implementation and the spec's published known-answer vector.

Connector traffic (both directions) is signed the same way over the *request content*
`"<METHOD> <target>\n" + body` (`request_content`), so a signature also binds the method, the
path and the query string, and an empty-bodied GET is signed too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybrid.errors import AuthenticationError

DEFAULT_TOLERANCE_S = 300
# Redis remembers an id for at least twice the window in which a replay could still verify.
MIN_DEDUPE_TTL_S = 2 * DEFAULT_TOLERANCE_S
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
MAX_ID_LENGTH = 256
MAX_SIGNATURE_HEADER_LENGTH = 8192
REDIS_WARNING_INTERVAL_S = 60.0

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")
_DIGEST_BYTES = hashlib.sha256().digest_size


class WebhookVerificationError(AuthenticationError):
    """The message is not authentic or not current. The message is generic on purpose; `reason`
    (a short code: missing_headers, malformed_headers, timestamp, signature) is for logs."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _missing() -> WebhookVerificationError:
    return WebhookVerificationError("missing webhook headers", "missing_headers")


def _malformed() -> WebhookVerificationError:
    return WebhookVerificationError("malformed webhook headers", "malformed_headers")


def _stale() -> WebhookVerificationError:
    return WebhookVerificationError("webhook timestamp outside the tolerance", "timestamp")


def _bad_signature() -> WebhookVerificationError:
    return WebhookVerificationError("invalid webhook signature", "signature")


@dataclass(frozen=True)
class WebhookMessage:
    """A verified message: its id (the sender's idempotency key) and Unix timestamp."""

    id: str
    timestamp: int


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> WebhookMessage:
    """Check the message's signature against each of the source's secrets (rotation) and its
    timestamp against `now` ± `tolerance_s`; raises WebhookVerificationError, nothing else.

    Run this before parsing, logging or storing anything from the request.
    """
    msg_id = _header(headers, HEADER_ID)
    raw_timestamp = _header(headers, HEADER_TIMESTAMP)
    raw_signatures = _header(headers, HEADER_SIGNATURE)
    if not msg_id or not raw_timestamp or not raw_signatures:
        raise _missing()
    if (
        not _ID.fullmatch(msg_id)
        or not _TIMESTAMP.fullmatch(raw_timestamp)
        or len(raw_signatures) > MAX_SIGNATURE_HEADER_LENGTH
    ):
        raise _malformed()
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if not abs(current - timestamp) <= tolerance_s:  # NaN included
        raise _stale()
    offered = _offered_signatures(raw_signatures)
    if not offered:
        raise _bad_signature()
    signed = f"{msg_id}.{raw_timestamp}.".encode("ascii") + bytes(body)
    keys = _secret_keys(secrets)
    matched = False
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        for candidate in offered:
            # Every comparison runs: the time taken does not depend on which one matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise _bad_signature()
    return WebhookMessage(id=msg_id, timestamp=timestamp)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature entry of a message (for senders, tests and the demo)."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + bytes(body)
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a message signed with `secret`."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: sign(secret, msg_id, timestamp, body),
    }


def new_webhook_secret() -> str:
    """A fresh secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_…` secret (the prefix is optional, padding may be left out).

    Raises ValueError with a message that never contains the secret.
    """
    text = secret.removeprefix(SECRET_PREFIX).strip()
    text += "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _secret_keys(secrets: Sequence[str]) -> list[bytes]:
    keys: list[bytes] = []
    for secret in secrets:
        try:
            keys.append(decode_secret(secret))
        except ValueError:
            # A configuration problem, not the sender's: skip it, say so, never show it.
            logging.getLogger("hybrid.signing").warning("a configured webhook secret is malformed")
    return keys


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value, names compared case-insensitively; differing duplicates are
    malformed (which one the signer meant is unknowable)."""
    found: str | None = None
    for key, value in headers.items():
        if not isinstance(key, str) or key.strip().lower() != name:
            continue
        if not isinstance(value, str):
            raise _malformed()
        value = value.strip()
        if found is not None and found != value:
            raise _malformed()
        found = value
    return found


def _offered_signatures(header: str) -> list[bytes]:
    """The digests of the well-formed `v1` entries; other versions and junk are ignored."""
    offered: list[bytes] = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            digest = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(digest) == _DIGEST_BYTES:
            offered.append(digest)
    return offered


def request_content(method: str, target: str, body: bytes = b"") -> bytes:
    """What a connector request's signature covers: the request line, then the raw body.

    `target` is the path with its query string exactly as sent (``/v1/query``,
    ``/api/v1/connectors/con_1/jobs?wait=20``).
    """
    return f"{method.upper()} {target}\n".encode() + bytes(body)


def sign_request(
    secret: str, method: str, target: str, body: bytes = b"", *, msg_id: str, timestamp: int
) -> dict[str, str]:
    """The Standard Webhooks headers of a connector request (see `request_content`)."""
    return signed_headers(secret, msg_id, timestamp, request_content(method, target, body))


def verify_request(
    headers: Mapping[str, str],
    method: str,
    target: str,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> WebhookMessage:
    """`verify` over a connector request's content; raises WebhookVerificationError."""
    return verify(
        headers, request_content(method, target, body), secrets, now=now, tolerance_s=tolerance_s
    )
