"""Redis leases: a random token per holder, Lua compare-and-extend / compare-and-delete, and a
TTL shorter than the holder's remaining time.

A lease only says who *should* be working; correctness-critical writes also carry a fencing
number that PostgreSQL checks (see `hybrid.sync.executions`), so a holder that stalled past its
TTL and resumes changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hybrid.cache import redis_errors

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class Lease:
    """A held lease. `extend` and `release` act only while the token is still ours."""

    key: str
    token: str
    ttl_ms: int
    _redis: Callable[[], Any]

    def extend(self, ttl_ms: int | None = None) -> bool:
        """Push the expiry out; False when the lease was lost (expired, taken over)."""
        with redis_errors():
            result = self._redis().eval(_EXTEND, 1, self.key, self.token, ttl_ms or self.ttl_ms)
        return bool(result)

    def release(self) -> bool:
        with redis_errors():
            return bool(self._redis().eval(_RELEASE, 1, self.key, self.token))


def acquire(redis: Callable[[], Any], name: str, ttl_ms: int) -> Lease | None:
    """The lease called `name` for `ttl_ms`, or None while another holder has it."""
    if ttl_ms < 1:
        raise ValueError("ttl_ms must be positive")
    key = f"hybrid:lease:{{{name}}}"
    token = secrets.token_hex(16)
    with redis_errors():
        taken = redis().set(key, token, nx=True, px=ttl_ms)
    return Lease(key, token, ttl_ms, redis) if taken else None
