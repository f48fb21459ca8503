"""cache-sync: masked results of hot queries kept in Redis and served with stale-if-error.

- `fingerprint`: normalised SQL (sqlglot) + parameters → the key of a query
- `payload`: the cached bytes of a result (compressed JSON) and its content hash
- `store`: the Redis side (tenant-scoped entries, the per-tenant index, counters, outcomes)
- `fetch`: running a query through the tenant's connector (tunnel or relay)
- `frequency`: the fingerprint log in PostgreSQL, its decayed score and the hot set
- `flight`: serving one request (hit, single-flight miss, stale-if-error)
- `links`: whether a connector answers and is in low-bandwidth mode (for the refresh)
- `refresh`: the 5-minute refresh of each tenant's hot set within a budget
- `policy` (the knobs), `errors`, `schemas` (request bodies), `routes` and `app` (the
  function)
"""
