"""Who is calling: operator key, tenant API keys (scoped) and the internal service key."""

from hybrid.auth.keys import (
    ApiKeyToken,
    hash_secret,
    new_api_key,
    new_id,
    parse_api_key,
    secrets_equal,
)
from hybrid.auth.principal import SCOPES, Principal, authenticate, require

__all__ = [
    "SCOPES",
    "ApiKeyToken",
    "Principal",
    "authenticate",
    "hash_secret",
    "new_api_key",
    "new_id",
    "parse_api_key",
    "require",
    "secrets_equal",
]
