"""Who is calling: operator key, tenant API keys (scoped) and the internal service key."""

from hybrid.auth.keys import (
    ApiKeyToken,
    hash_secret,
    new_api_key,
    new_id,
    parse_api_key,
    secrets_equal,
)
from hybrid.auth.principal import (
    INTERNAL_KEY_HEADER,
    SCOPES,
    Principal,
    authenticate,
    authenticate_internal,
    require,
    require_internal,
)

__all__ = [
    "INTERNAL_KEY_HEADER",
    "SCOPES",
    "ApiKeyToken",
    "Principal",
    "authenticate",
    "authenticate_internal",
    "hash_secret",
    "new_api_key",
    "new_id",
    "parse_api_key",
    "require",
    "require_internal",
    "secrets_equal",
]
