"""token-pick: leases of upstream API tokens from pools, every limit enforced in one Redis Lua
script per pick (see `hybrid.tokens.picker`), configuration and secrets in PostgreSQL."""
