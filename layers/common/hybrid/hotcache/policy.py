"""The knobs of cache-sync, with the defaults the function runs with (tests and benchmarks
pass their own)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CachePolicy:
    # An entry's physical TTL; `max_age` of each request decides what is fresh for it.
    ttl_s: int = 3600
    # A result with more rows than this, or more JSON bytes, is refused (422), not cached.
    max_rows: int = 5000
    max_result_bytes: int = 4 * 1024 * 1024
    # A connector query of a request runs at most this long (the relay wait included);
    # requests that wait on another's query give up after `wait_s`.
    query_timeout_s: float = 20.0
    wait_s: float = 25.0
    flight_lock_ms: int = 30_000
    # The fingerprint log: score half-life, and the hot set per tenant.
    half_life_s: float = 3600.0
    hot_set_size: int = 200
    hot_min_score: float = 2.0
    forget_unused_s: int = 7 * 86400
    # One refresh run: a time cap (also bounded by the invocation), a byte budget for the
    # whole run and per connector (smaller in low-bandwidth mode), and how many queries run
    # at once. Entries refreshed more recently than `refresh_min_age_s` are left alone.
    refresh_time_s: float = 240.0
    refresh_bytes: int = 512 * 1024 * 1024
    connector_bytes: int = 128 * 1024 * 1024
    low_bandwidth_connector_bytes: int = 8 * 1024 * 1024
    refresh_threads: int = 8
    refresh_query_timeout_s: float = 15.0
    refresh_min_age_s: float = 120.0


DEFAULT_POLICY = CachePolicy()
