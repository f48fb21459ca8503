"""Page tokens: the offset of the next page, sealed with an HMAC so only this connector (and
the cloud, which shares the secret) can make one, and bound to one query and its parameters.

A token is ``pt1.<base64url payload>.<base64url MAC>``; the payload is ``{"o": offset, "q":
<hex SHA-256 of source, SQL and parameters>}``. The MAC key is derived from the connector
secret, never the secret itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from hybrid.connectors.protocol import canonical
from hybrid.signing import decode_secret

PREFIX = "pt1"
MAX_TOKEN_LENGTH = 512
_LABEL = b"hybrid.connector/page-token/v1"


class PageTokenError(ValueError):
    """The token is malformed, forged, or belongs to another query."""


def query_hash(source: str, sql: str, params: Sequence[Any]) -> str:
    """What a token is bound to: the source, the SQL text exactly, and the parameters."""
    return hashlib.sha256(canonical([source, sql, list(params)])).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Seals and opens page tokens with a key derived from the connector secret."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(decode_secret(secret), _LABEL, hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def seal(self, offset: int, bound_to: str) -> str:
        if offset < 0:
            raise ValueError("offset must not be negative")
        payload = json.dumps({"o": offset, "q": bound_to}, separators=(",", ":")).encode()
        return f"{PREFIX}.{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, token: str, bound_to: str) -> int:
        """The offset a token holds; `PageTokenError` unless it is ours and for this query."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise PageTokenError("page_token: malformed")
        prefix, _, rest = token.partition(".")
        encoded, _, mac_text = rest.partition(".")
        if prefix != PREFIX or not encoded or not mac_text:
            raise PageTokenError("page_token: malformed")
        try:
            payload, mac = _unb64(encoded), _unb64(mac_text)
        except (binascii.Error, ValueError):
            raise PageTokenError("page_token: malformed") from None
        if not hmac.compare_digest(self._mac(payload), mac):
            raise PageTokenError("page_token: not issued by this connector")
        try:
            body = json.loads(payload)
        except ValueError:
            raise PageTokenError("page_token: malformed") from None
        offset = body.get("o") if isinstance(body, dict) else None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise PageTokenError("page_token: malformed")
        if not hmac.compare_digest(str(body.get("q", "")), bound_to):
            raise PageTokenError("page_token: issued for another query or other parameters")
        return offset
