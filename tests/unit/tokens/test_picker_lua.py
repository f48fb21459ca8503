"""The token-pick Lua scripts through the shared stack's real Redis, on a test clock: each limit,
rotation, tiers and weights, cooldowns, risk, late and repeated releases, and config sync."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from typing import Any

import pytest

from hybrid.cache import redis_client
from hybrid.tokens.picker import (
    COOLDOWN_AFTER_2_MS,
    COOLDOWN_AFTER_3_MS,
    LEASE_GRACE_MS,
    Exhausted,
    Leased,
    LeaseRef,
    NotLoaded,
    TokenConfig,
    TokenPicker,
    pool_prefix,
)

T0 = 1_800_000_000_000
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def redis(endpoints: Any) -> Any:
    return redis_client(endpoints.redis_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def picker(redis: Any, clock: Clock) -> TokenPicker:
    return TokenPicker(lambda: redis, clock_ms=clock)


@pytest.fixture
def pool() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def token(token_id: str, **overrides: Any) -> TokenConfig:
    fields: dict[str, Any] = {
        "id": token_id,
        "status": "active",
        "tier": 0,
        "weight": 1,
        "rpm": 1000,
        "rph": 10_000,
        "rpd": 100_000,
        "concurrency": 100,
        "rotate_after": 0,
        "sealed_secret": f"sealed-{token_id}".encode(),
    }
    fields.update(overrides)
    return TokenConfig(**fields)


def leased(result: Any) -> Leased:
    assert isinstance(result, Leased), result
    return result


def test_a_pool_not_in_redis_is_reported_as_not_loaded(picker: TokenPicker, pool: str) -> None:
    assert isinstance(picker.pick(pool, lease_ms=1000), NotLoaded)
    picker.load(pool, 1, [])
    assert picker.pick(pool, lease_ms=1000) == Exhausted(None, T0)


def test_rpm_is_a_sliding_window_that_frees_a_slot_exactly_a_minute_after_a_pick(
    picker: TokenPicker, pool: str, clock: Clock
) -> None:
    picker.load(pool, 1, [token("tok_a", rpm=2)])
    first = leased(picker.pick(pool, lease_ms=1000))
    clock.now += 10_000
    leased(picker.pick(pool, lease_ms=1000))
    clock.now += 1
    denied = picker.pick(pool, lease_ms=1000)
    assert denied == Exhausted(first.now_ms + MINUTE, clock.now)
    clock.now = first.now_ms + MINUTE - 1
    assert isinstance(picker.pick(pool, lease_ms=1000), Exhausted)
    clock.now = first.now_ms + MINUTE
    assert leased(picker.pick(pool, lease_ms=1000)).token_id == "tok_a"


@pytest.mark.parametrize(("limit", "width"), [("rph", HOUR), ("rpd", DAY)])
def test_hourly_and_daily_limits_hold_over_their_whole_window(
    picker: TokenPicker, pool: str, clock: Clock, limit: str, width: int
) -> None:
    picker.load(pool, 1, [token("tok_a", **{"rpm": 100, "rph": 100, "rpd": 100, limit: 3})])
    times = []
    for _ in range(3):
        times.append(leased(picker.pick(pool, lease_ms=1000)).now_ms)
        clock.now += 2 * MINUTE
    denied = picker.pick(pool, lease_ms=1000)
    assert denied == Exhausted(times[0] + width, clock.now)
    clock.now = times[0] + width
    leased(picker.pick(pool, lease_ms=1000))
    assert picker.pick(pool, lease_ms=1000) == Exhausted(times[1] + width, clock.now)


def test_concurrency_is_held_by_leases_that_free_their_slot_when_they_expire(
    picker: TokenPicker, pool: str, clock: Clock
) -> None:
    picker.load(pool, 1, [token("tok_a", concurrency=1)])
    first = leased(picker.pick(pool, lease_ms=5_000))
    assert first.expires_at_ms == T0 + 5_000
    assert picker.pick(pool, lease_ms=5_000) == Exhausted(T0 + 5_000, T0)
    clock.now = T0 + 5_000  # the caller died: its lease ran out, the slot is free
    second = leased(picker.pick(pool, lease_ms=5_000))
    assert picker.release(LeaseRef.parse(second.lease_id), "success", latency_ms=10).recorded
    leased(picker.pick(pool, lease_ms=5_000))


def test_releasing_twice_or_an_unknown_lease_changes_nothing(
    picker: TokenPicker, pool: str
) -> None:
    picker.load(pool, 1, [token("tok_a", concurrency=1)])
    lease = LeaseRef.parse(leased(picker.pick(pool, lease_ms=5_000)).lease_id)
    assert lease is not None
    assert picker.release(lease, "failure", latency_ms=10).consecutive_failures == 1
    assert not picker.release(lease, "failure", latency_ms=10).recorded
    assert not picker.release(LeaseRef(pool, "tok_a", "0" * 24), "failure", latency_ms=1).recorded
    _now, usage = picker.usage(pool, ["tok_a"])
    assert usage["tok_a"].consecutive_failures == 1
    assert usage["tok_a"].leases == 0


def test_a_late_release_counts_within_the_grace_period_and_not_after(
    picker: TokenPicker, pool: str, clock: Clock
) -> None:
    picker.load(pool, 1, [token("tok_a")])
    late = LeaseRef.parse(leased(picker.pick(pool, lease_ms=1_000)).lease_id)
    too_late = LeaseRef.parse(leased(picker.pick(pool, lease_ms=1_000)).lease_id)
    assert late is not None
    assert too_late is not None
    clock.now = T0 + 1_000 + LEASE_GRACE_MS
    assert picker.release(late, "failure", latency_ms=5).recorded
    clock.now += 1
    assert not picker.release(too_late, "failure", latency_ms=5).recorded


def test_a_token_is_passed_over_after_rotate_after_consecutive_picks(
    picker: TokenPicker, pool: str
) -> None:
    picker.load(pool, 1, [token("tok_a", rotate_after=2), token("tok_b", rotate_after=2)])
    picks = [leased(picker.pick(pool, lease_ms=1000)).token_id for _ in range(60)]
    runs = [len(list(run)) for _token, run in itertools.groupby(picks)]
    assert max(runs) == 2


def test_rotation_lets_the_only_token_serve_again(picker: TokenPicker, pool: str) -> None:
    picker.load(pool, 1, [token("tok_a", rotate_after=1)])
    assert [leased(picker.pick(pool, lease_ms=1000)).token_id for _ in range(3)] == ["tok_a"] * 3


def test_lower_tiers_serve_first_and_the_next_tier_only_when_they_are_limited(
    picker: TokenPicker, pool: str
) -> None:
    picker.load(pool, 1, [token("tok_low", tier=0, rpm=3), token("tok_high", tier=1)])
    picks = [leased(picker.pick(pool, lease_ms=1000)).token_id for _ in range(5)]
    assert picks == ["tok_low"] * 3 + ["tok_high"] * 2


def test_weights_share_the_picks_within_a_tier(
    picker: TokenPicker, pool: str, clock: Clock
) -> None:
    picker.load(pool, 1, [token("tok_a", weight=1), token("tok_b", weight=9)])
    counts: Counter[str] = Counter()
    for _ in range(500):
        counts[leased(picker.pick(pool, lease_ms=1000)).token_id] += 1
        clock.now += 1000
    assert 0.85 <= counts["tok_b"] / 500 <= 0.95, counts


def test_each_token_is_chosen_in_proportion_to_its_weight_and_risk(
    picker: TokenPicker, pool: str, clock: Clock, redis: Any
) -> None:
    weights = {"tok_a": 1, "tok_b": 2, "tok_c": 3, "tok_d": 4}
    picker.load(pool, 1, [token(name, weight=weight) for name, weight in weights.items()])
    redis.hset(pool_prefix(pool) + "out:tok_d", "r", "0.5")  # its weight counts half: 2
    picks = 4000
    counts: Counter[str] = Counter()
    for _ in range(picks):
        counts[leased(picker.pick(pool, lease_ms=1000)).token_id] += 1
        clock.now += 100
    expected = {"tok_a": 1 / 8, "tok_b": 2 / 8, "tok_c": 3 / 8, "tok_d": 2 / 8}
    for name, share in expected.items():  # four standard deviations or less
        assert abs(counts[name] / picks - share) < 4 * (share * (1 - share) / picks) ** 0.5, counts


def test_the_exact_pass_decides_when_the_draws_run_out(
    picker: TokenPicker, pool: str, clock: Clock, redis: Any
) -> None:
    # The heavy token is cooling down, and every light one is almost always rejected by the
    # draws (weight 1 of 1000): the exact pass must still share the picks evenly among them.
    light = [f"tok_{index}" for index in range(10)]
    picker.load(pool, 1, [token("tok_heavy", weight=1000), *(token(name) for name in light)])
    redis.hset(pool_prefix(pool) + "out:tok_heavy", "c", str((T0 + HOUR) * 10 + 1))
    picks = 1000
    counts: Counter[str] = Counter()
    for _ in range(picks):
        counts[leased(picker.pick(pool, lease_ms=1000)).token_id] += 1
        clock.now += 100
    assert set(counts) == set(light)
    assert all(0.05 < counts[name] / picks < 0.15 for name in light), counts
    clock.now = T0 + HOUR  # cooled down: the heavy token takes nearly every pick again
    heavy = 0
    for _ in range(200):
        heavy += leased(picker.pick(pool, lease_ms=1000)).token_id == "tok_heavy"
        clock.now += 100
    assert heavy >= 190


def test_a_reload_rebuilds_the_tier_lists_and_drops_the_ones_it_replaces(
    picker: TokenPicker, pool: str, redis: Any
) -> None:
    prefix = pool_prefix(pool)
    picker.load(pool, 1, [token("tok_a", tier=2), token("tok_b", tier=7, weight=5)])
    assert redis.hget(prefix + "cfg", "_tiers") == b"2:1:1 7:5:1"
    picker.load(pool, 2, [token("tok_a", tier=0, weight=3), token("tok_b", status="paused")])
    assert redis.hget(prefix + "cfg", "_tiers") == b"0:3:1"
    assert redis.lrange(prefix + "tier:0", 0, -1) == [b"3 tok_a"]
    assert not redis.exists(prefix + "tier:2", prefix + "tier:7")
    assert {leased(picker.pick(pool, lease_ms=1000)).token_id for _ in range(20)} == {"tok_a"}


def test_a_config_without_tier_lists_is_reported_as_not_loaded(
    picker: TokenPicker, pool: str, redis: Any
) -> None:
    # Written by a release before the tier lists: the caller reloads it from PostgreSQL.
    picker.load(pool, 1, [token("tok_a")])
    redis.hdel(pool_prefix(pool) + "cfg", "_tiers")
    assert isinstance(picker.pick(pool, lease_ms=1000), NotLoaded)
    assert picker.load(pool, 1, [token("tok_a")])
    leased(picker.pick(pool, lease_ms=1000))


def test_cooldowns_escalate_with_consecutive_failures_and_five_suspend(
    picker: TokenPicker, pool: str, clock: Clock
) -> None:
    picker.load(pool, 1, [token("tok_a")])
    leases = [LeaseRef.parse(leased(picker.pick(pool, lease_ms=60_000)).lease_id) for _ in range(6)]
    results = [picker.release(lease, "failure", latency_ms=50) for lease in leases[:5]]  # type: ignore[arg-type]
    assert [r.consecutive_failures for r in results] == [1, 2, 3, 4, 5]
    assert [r.cooldown_until_ms for r in results[:4]] == [
        0,
        T0 + COOLDOWN_AFTER_2_MS,
        T0 + COOLDOWN_AFTER_3_MS,
        T0 + COOLDOWN_AFTER_3_MS,
    ]
    assert [r.cause for r in results] == [None, "failures", "failures", "failures", "suspended"]
    assert results[4].suspended_now
    assert picker.pick(pool, lease_ms=1000) == Exhausted(None, clock.now)
    after = picker.release(leases[5], "success", latency_ms=50)  # type: ignore[arg-type]
    assert after.cause == "suspended"
    assert not after.suspended_now
    clock.now += DAY
    assert picker.pick(pool, lease_ms=1000) == Exhausted(None, clock.now)  # until re-enabled
    picker.reset(pool, "tok_a")
    leased(picker.pick(pool, lease_ms=1000))


def test_a_success_resets_the_failure_count_without_ending_a_cooldown(
    picker: TokenPicker, pool: str
) -> None:
    picker.load(pool, 1, [token("tok_a")])
    leases = [LeaseRef.parse(leased(picker.pick(pool, lease_ms=60_000)).lease_id) for _ in range(4)]
    picker.release(leases[0], "failure", latency_ms=1)  # type: ignore[arg-type]
    cooled = picker.release(leases[1], "failure", latency_ms=1)  # type: ignore[arg-type]
    ok = picker.release(leases[2], "success", latency_ms=1)  # type: ignore[arg-type]
    assert ok.consecutive_failures == 0
    assert ok.cooldown_until_ms == cooled.cooldown_until_ms == T0 + COOLDOWN_AFTER_2_MS
    again = picker.release(leases[3], "failure", latency_ms=1)  # type: ignore[arg-type]
    assert again.consecutive_failures == 1


def test_rate_limited_honours_the_upstream_retry_after(
    picker: TokenPicker, pool: str, clock: Clock
) -> None:
    picker.load(pool, 1, [token("tok_a")])
    first = LeaseRef.parse(leased(picker.pick(pool, lease_ms=60_000)).lease_id)
    second = LeaseRef.parse(leased(picker.pick(pool, lease_ms=60_000)).lease_id)
    limited = picker.release(first, "rate_limited", latency_ms=1, retry_after_s=120)  # type: ignore[arg-type]
    assert (limited.cooldown_until_ms, limited.cause) == (T0 + 120_000, "retry_after")
    assert picker.pick(pool, lease_ms=1000) == Exhausted(T0 + 120_000, T0)
    # Two in a row: the 5-minute failure cooldown is longer than the upstream's 10 s.
    again = picker.release(second, "rate_limited", latency_ms=1, retry_after_s=10)  # type: ignore[arg-type]
    assert (again.cooldown_until_ms, again.cause) == (T0 + COOLDOWN_AFTER_2_MS, "failures")
    clock.now = T0 + COOLDOWN_AFTER_2_MS
    leased(picker.pick(pool, lease_ms=1000))


def test_risk_is_the_error_share_plus_thirty_percent_latency(
    picker: TokenPicker, pool: str
) -> None:
    picker.load(pool, 1, [token("tok_a")])
    outcomes = ["success", "failure", "success", "success"]
    result = None
    for outcome in outcomes:
        lease = LeaseRef.parse(leased(picker.pick(pool, lease_ms=60_000)).lease_id)
        result = picker.release(lease, outcome, latency_ms=1000)  # type: ignore[arg-type]
    assert result is not None
    # one error in four outcomes; latency EWMA 1000 ms against a 2000 ms reference
    assert result.risk == pytest.approx(0.7 * 0.25 + 0.3 * 0.5, abs=1e-4)


def test_an_older_config_never_replaces_a_newer_one(picker: TokenPicker, pool: str) -> None:
    assert picker.load(pool, 5, [token("tok_a", status="paused")])
    assert not picker.load(pool, 4, [token("tok_a")])
    assert picker.loaded_version(pool) == 5
    assert picker.pick(pool, lease_ms=1000) == Exhausted(None, T0)


def test_a_config_entry_without_all_limits_is_never_handed_out(
    picker: TokenPicker, pool: str, redis: Any
) -> None:
    prefix = pool_prefix(pool)
    picker.load(pool, 1, [token("tok_a")])
    redis.hset(prefix + "cfg", "tok_a", "5 5 5")  # concurrency and rotation missing
    redis.hset(prefix + "cfg", "tok_b", "5 5 garbage 5 0")
    redis.hset(prefix + "sel", mapping={"tok_b": "1", "tok_c": "1"})  # tok_c: no limits at all
    redis.hset(prefix + "sec", mapping={"tok_b": "sealed", "tok_c": "sealed"})
    assert picker.pick(pool, lease_ms=1000) == Exhausted(None, T0)


def test_every_key_of_a_pool_carries_its_hash_tag(
    picker: TokenPicker, pool: str, redis: Any
) -> None:
    picker.load(pool, 1, [token("tok_a")])
    lease = LeaseRef.parse(leased(picker.pick(pool, lease_ms=1000)).lease_id)
    picker.release(lease, "failure", latency_ms=1)  # type: ignore[arg-type]
    keys = [key.decode() for key in redis.scan_iter(match=f"*{pool}*")]
    assert len(keys) >= 6
    assert all(key.startswith(f"tp:{{{pool}}}:") for key in keys), keys


def test_without_a_test_clock_the_scripts_use_redis_time(redis: Any, pool: str) -> None:
    picker = TokenPicker(lambda: redis)
    picker.load(pool, 1, [token("tok_a")])
    seconds, micros = redis.time()
    redis_now = seconds * 1000 + micros // 1000
    got = leased(picker.pick(pool, lease_ms=1000))
    assert abs(got.now_ms - redis_now) < 5_000
