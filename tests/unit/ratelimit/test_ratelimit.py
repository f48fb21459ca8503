"""Rate limits without Redis: the header format, limits, the per-instance fallback and its
warning. The Redis path is tested in test_ratelimit_redis.py."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from structlog.testing import capture_logs

from hybrid.cache import CacheError, CacheUnavailableError
from hybrid.ratelimit import (
    DEGRADED_MESSAGE,
    Decision,
    Limit,
    LimitState,
    LocalRateLimiter,
    RateLimiter,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def unavailable() -> Any:
    raise CacheUnavailableError("redis unavailable: ConnectionError")


# --- headers -----------------------------------------------------------------------------------


def test_headers_of_an_allowed_decision() -> None:
    decision = Decision(True, 0, [LimitState("tenant", 600, 599, 1)])
    assert decision.headers() == {
        "RateLimit-Policy": '"tenant";q=600;w=60',
        "RateLimit": '"tenant";r=599;t=1',
    }


def test_headers_of_a_denied_decision_with_two_policies() -> None:
    decision = Decision(False, 7, [LimitState("tenant", 1200, 40, 1), LimitState("key", 6, 0, 7)])
    assert decision.headers() == {
        "RateLimit-Policy": '"tenant";q=1200;w=60, "key";q=6;w=60',
        "RateLimit": '"tenant";r=40;t=1, "key";r=0;t=7',
        "Retry-After": "7",
    }


def test_headers_without_limits() -> None:
    assert Decision(True, 0, []).headers() == {}
    assert Decision(False, 0, []).headers() == {"Retry-After": "1"}


def test_headers_parse_as_structured_field_lists() -> None:
    """Each header is an RFC 9651 List of Items: a quoted String with Integer parameters."""
    import re

    item = r'"[A-Za-z0-9_.:-]+"(;[a-z]+=[0-9]+)+'
    sf_list = re.compile(rf"^{item}(, {item})*$")
    decision = Decision(False, 3, [LimitState("a.b", 1, 0, 3), LimitState("c:d", 2, 1, 2)])
    for name in ("RateLimit-Policy", "RateLimit"):
        assert sf_list.match(decision.headers()[name])


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "", "per_minute": 1},
        {"name": 'quote"', "per_minute": 1},
        {"name": "spa ce", "per_minute": 1},
        {"name": "x" * 65, "per_minute": 1},
        {"name": "ok", "per_minute": 0},
        {"name": "ok", "per_minute": 1, "burst": 0},
        {"name": "ok", "per_minute": 1, "partition": ""},
        {"name": "ok", "per_minute": 1, "partition": "tab\t"},
    ],
)
def test_invalid_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        Limit(**kwargs)


def test_capacity_defaults_to_per_minute() -> None:
    assert Limit("tenant", 600).capacity == 600
    assert Limit("tenant", 600, burst=20).capacity == 20


def test_check_rejects_bad_arguments() -> None:
    limiter = RateLimiter(unavailable)
    with pytest.raises(ValueError, match="braces"):
        limiter.check("ten_{x}", [Limit("tenant", 10)])
    with pytest.raises(ValueError, match="burst"):
        limiter.check("ten_1", [Limit("tenant", 10, burst=2)], cost=3)
    with pytest.raises(ValueError, match="distinct"):
        limiter.check("ten_1", [Limit("a", 10), Limit("a", 20)])
    with pytest.raises(ValueError, match="negative"):
        limiter.check("ten_1", [Limit("a", 10)], cost=-1)


def test_no_limits_always_allows() -> None:
    assert RateLimiter(unavailable).check("ten_1", []) == Decision(True, 0, [])


# --- the per-instance fallback -----------------------------------------------------------------


def test_fallback_divides_each_limit_by_the_assumed_instances() -> None:
    clock = FakeClock()
    limiter = RateLimiter(unavailable, assumed_instances=10, clock=clock)
    limit = Limit("tenant", 600, burst=50)  # locally: 60/min (one per second), burst 5

    decisions = [limiter.check("ten_1", [limit]) for _ in range(7)]

    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert all(d.degraded for d in decisions)
    assert decisions[0].limits == [LimitState("tenant", 60, 4, 1)]
    assert decisions[5].retry_after_s == 1
    assert decisions[5].headers()["RateLimit-Policy"] == '"tenant";q=60;w=60'
    clock.now += 1.0
    assert limiter.check("ten_1", [limit]).allowed
    assert not limiter.check("ten_1", [limit]).allowed


def test_fallback_never_goes_below_one_request() -> None:
    limiter = RateLimiter(unavailable, assumed_instances=100, clock=FakeClock())
    decision = limiter.check("ten_1", [Limit("tenant", 30)])
    assert decision.allowed
    assert decision.limits == [LimitState("tenant", 1, 0, 60)]
    denied = limiter.check("ten_1", [Limit("tenant", 30)])
    assert not denied.allowed
    assert denied.retry_after_s == 60


def test_fallback_keeps_tenants_and_partitions_apart() -> None:
    limiter = RateLimiter(unavailable, assumed_instances=1, clock=FakeClock())
    one = Limit("key", 60, burst=1, partition="k1")
    two = Limit("key", 60, burst=1, partition="k2")
    assert limiter.check("ten_1", [one]).allowed
    assert limiter.check("ten_1", [two]).allowed
    assert limiter.check("ten_2", [one]).allowed
    assert not limiter.check("ten_1", [one]).allowed


def test_fallback_consumes_nothing_when_one_limit_denies() -> None:
    limiter = RateLimiter(unavailable, assumed_instances=1, clock=FakeClock())
    wide, narrow = Limit("tenant", 60, burst=5), Limit("key", 60, burst=2)
    assert limiter.check("t", [wide, narrow]).allowed
    assert limiter.check("t", [wide, narrow]).allowed
    denied = limiter.check("t", [wide, narrow])
    assert not denied.allowed
    assert [s.remaining for s in denied.limits] == [3, 0]
    assert limiter.check("t", [wide]).limits[0].remaining == 2


def test_local_limiter_is_thread_safe() -> None:
    local = LocalRateLimiter(2, clock=FakeClock())  # the clock stands still
    limit = Limit("tenant", 200, burst=100)  # locally: burst 50
    allowed: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def hammer() -> None:
        barrier.wait()
        for _ in range(50):
            decision = local.check(["k"], [limit], 1)
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 50


def test_degraded_warning_is_logged_at_most_once_a_minute() -> None:
    clock = FakeClock()
    calls = []

    def factory() -> Any:
        calls.append(clock.now)
        return unavailable()

    limiter = RateLimiter(factory, redis_retry_s=5.0, clock=clock)
    limit = Limit("tenant", 600)
    with capture_logs() as logs:
        for _step in range(130):  # 130 seconds, one check a second
            limiter.check("ten_1", [limit])
            clock.now += 1.0

    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [w["event"] for w in warnings] == [DEGRADED_MESSAGE] * 3
    assert warnings[0]["error_type"] == "CacheUnavailableError"
    # Redis is retried every 5 s, not on every request.
    assert len(calls) == 26


def test_redis_used_again_after_it_recovers() -> None:
    clock = FakeClock()
    healthy = {"up": False}

    class FakeScript:
        def __call__(self, keys: list[str], args: list[Any], client: Any = None) -> list[int]:
            return [1, 9, 100_000, 0]

    class FakeRedis:
        def register_script(self, source: str) -> Any:
            return FakeScript()

    client = FakeRedis()

    def factory() -> Any:
        if not healthy["up"]:
            raise CacheUnavailableError("down")
        return client

    limiter = RateLimiter(factory, redis_retry_s=5.0, clock=clock)
    with capture_logs() as logs:
        assert limiter.check("t", [Limit("tenant", 600, burst=10)]).degraded
        healthy["up"] = True
        clock.now += 1
        assert limiter.check("t", [Limit("tenant", 600, burst=10)]).degraded  # not retried yet
        clock.now += 5
        decision = limiter.check("t", [Limit("tenant", 600, burst=10)])
    assert not decision.degraded
    assert decision.limits == [LimitState("tenant", 600, 9, 1)]
    assert [e["event"] for e in logs] == [DEGRADED_MESSAGE, "rate limiting uses redis again"]


@pytest.mark.parametrize(
    "error",
    [CacheError("script failed"), ConnectionRefusedError(), TimeoutError()],
)
def test_any_redis_failure_falls_back(error: Exception) -> None:
    def factory() -> Any:
        raise error

    assert RateLimiter(factory).check("t", [Limit("tenant", 600)]).degraded


def test_redis_py_errors_fall_back() -> None:
    from redis import exceptions

    for error in (
        exceptions.ConnectionError(),
        exceptions.TimeoutError(),
        exceptions.BusyLoadingError(),
    ):

        def factory(error: Exception = error) -> Any:
            raise error

        assert RateLimiter(factory).check("t", [Limit("tenant", 600)]).degraded


def test_a_programming_error_is_not_hidden() -> None:
    def factory() -> Any:
        raise TypeError("bug")

    with pytest.raises(TypeError):
        RateLimiter(factory).check("t", [Limit("tenant", 600)])
