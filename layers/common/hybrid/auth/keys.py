"""Key material: identifiers, API key tokens and their hashes.

An API key token is `hk_<key id hex>_<secret>`; only SHA-256 of the secret is stored. The secret
is 32 random bytes, so a fast hash is the right tool (no password stretching needed), compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

API_KEY_PREFIX = "hk_"
_API_KEY = re.compile(r"^hk_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiKeyToken:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{API_KEY_PREFIX}{self.key_id.removeprefix('key_')}_{self.secret}"


def new_id(prefix: str) -> str:
    """An opaque identifier such as `ten_3f9c0a7e5b1d2c4a`."""
    return f"{prefix}_{secrets.token_hex(8)}"


def new_api_key() -> ApiKeyToken:
    return ApiKeyToken(key_id=new_id("key"), secret=secrets.token_urlsafe(32))


def parse_api_key(token: str) -> ApiKeyToken | None:
    found = _API_KEY.match(token)
    if not found:
        return None
    return ApiKeyToken(key_id=f"key_{found['id']}", secret=found["secret"])


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secrets_equal(presented: str, expected_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(presented), expected_hash)
