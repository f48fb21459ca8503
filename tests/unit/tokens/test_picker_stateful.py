"""A hypothesis state machine against the real Redis: any interleaving of picks, releases
(success, failure, rate_limited), lease expiries, clock advances and operator re-enables.

The model is a plain-Python account of what happened (every pick time, every lease, every
outcome). After each step: no token ever exceeds its RPM, RPH, RPD or concurrency in any
window; a pick only returns a token the model says may serve, honouring tiers and rotation; a
refusal happens only when the model says no token may serve, with the model's earliest recovery;
cooldowns and suspension follow the rules (2 failures 5 min, 3 30 min, 5 suspended, Retry-After
honoured, a success resets the count).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hybrid.cache import redis_client
from hybrid.tokens.picker import (
    COOLDOWN_AFTER_2_MS,
    COOLDOWN_AFTER_3_MS,
    LATENCY_REFERENCE_MS,
    LEASE_GRACE_MS,
    RATE_LIMITED_DEFAULT_S,
    RISK_WINDOW,
    SUSPEND_AFTER,
    Exhausted,
    Leased,
    LeaseRef,
    TokenConfig,
    TokenPicker,
)

T0 = 1_800_000_000_000
WINDOWS = (("rpm", 60_000), ("rph", 3_600_000), ("rpd", 86_400_000))


@dataclass
class ModelToken:
    id: str
    tier: int
    weight: int
    rpm: int
    rph: int
    rpd: int
    concurrency: int
    rotate_after: int
    picks: list[int] = field(default_factory=list)
    leases: dict[str, int] = field(default_factory=dict)  # member -> expiry, not yet released
    fails: int = 0
    cool: int = 0
    cause: int = 0
    window: str = ""
    ewma: float | None = None

    def config(self) -> TokenConfig:
        return TokenConfig(
            id=self.id,
            status="active",
            tier=self.tier,
            weight=self.weight,
            rpm=self.rpm,
            rph=self.rph,
            rpd=self.rpd,
            concurrency=self.concurrency,
            rotate_after=self.rotate_after,
            sealed_secret=self.id.encode(),
        )

    def ready_at(self, now: int) -> int:
        """When the limits let this token serve (now if they do already)."""
        ready = now
        for name, width in WINDOWS:
            limit = getattr(self, name)
            inside = sorted(p for p in self.picks if p > now - width)
            if len(inside) >= limit:
                ready = max(ready, inside[len(inside) - limit] + width)
        held = sorted(e for e in self.leases.values() if e > now)
        if len(held) >= self.concurrency:
            ready = max(ready, held[len(held) - self.concurrency])
        return ready

    def recovery(self, now: int) -> int | None:
        if self.cause == 3:
            return None
        if self.cool > now:
            return self.cool
        return self.ready_at(now)


class PickerMachine(RuleBasedStateMachine):
    redis: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.pool = f"sm-{uuid.uuid4().hex[:12]}"
        self.picker = TokenPicker(lambda: self.redis, clock_ms=lambda: self.now)
        # tok_b's weight makes tok_a's draws almost always rejected: while tok_b serves, picks
        # take the rejection-sampling path; once it is out, the exact pass over the rest.
        self.tokens = {
            t.id: t
            for t in (
                ModelToken("tok_a", 0, 1, rpm=3, rph=5, rpd=8, concurrency=2, rotate_after=2),
                ModelToken("tok_b", 0, 1000, rpm=2, rph=6, rpd=7, concurrency=1, rotate_after=2),
                ModelToken("tok_c", 1, 1, rpm=4, rph=4, rpd=6, concurrency=2, rotate_after=0),
            )
        }
        assert self.picker.load(self.pool, 1, [t.config() for t in self.tokens.values()])
        self.last: str | None = None
        self.streak = 0
        self.issued: list[tuple[str, str]] = []  # (token id, member) of every lease ever given

    # -- helpers ------------------------------------------------------------------------------

    def _available(self) -> list[ModelToken]:
        return [
            t
            for t in self.tokens.values()
            if t.cause != 3 and t.cool <= self.now and t.ready_at(self.now) <= self.now
        ]

    def _held(self) -> str | None:
        if self.last is None:
            return None
        token = self.tokens[self.last]
        return self.last if 0 < token.rotate_after <= self.streak else None

    # -- rules --------------------------------------------------------------------------------

    @rule(lease_ms=st.sampled_from([1_000, 5_000, 120_000]))
    def pick(self, lease_ms: int) -> None:
        available = self._available()
        result = self.picker.pick(self.pool, lease_ms=lease_ms)
        if isinstance(result, Exhausted):
            assert not available, f"refused while {[t.id for t in available]} could serve"
            recoveries = [r for t in self.tokens.values() if (r := t.recovery(self.now))]
            assert result.recovery_ms == (min(recoveries) if recoveries else None)
            if result.recovery_ms is not None:
                assert result.recovery_ms > self.now
            return
        assert isinstance(result, Leased), result
        token = self.tokens[result.token_id]
        assert token in available, f"{token.id} handed out while limited or cooling"
        held = self._held()
        others = [t for t in available if t.id != held]
        if others:
            assert token.id != held, "rotation ignored"
            assert token.tier == min(t.tier for t in others), "a higher tier served first"
        assert result.now_ms == self.now
        assert result.expires_at_ms == self.now + lease_ms
        assert result.sealed_secret == token.id.encode()
        ref = LeaseRef.parse(result.lease_id)
        assert ref is not None
        assert (ref.pool, ref.token_id) == (self.pool, token.id)
        token.picks.append(self.now)
        token.leases[ref.member] = self.now + lease_ms
        self.issued.append((token.id, ref.member))
        self.streak = self.streak + 1 if token.id == self.last else 1
        self.last = token.id

    @precondition(lambda self: self.issued)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["success", "failure", "rate_limited"]),
        latency=st.sampled_from([5.0, 300.0, 2500.0]),
        retry_after=st.one_of(st.none(), st.sampled_from([0, 30, 400, 4000])),
    )
    def release(
        self, data: st.DataObject, outcome: str, latency: float, retry_after: int | None
    ) -> None:
        token_id, member = data.draw(st.sampled_from(self.issued))
        token = self.tokens[token_id]
        result = self.picker.release(
            LeaseRef(self.pool, token_id, member),
            outcome,  # type: ignore[arg-type]
            latency_ms=latency,
            retry_after_s=retry_after,
        )
        expiry = token.leases.pop(member, None)
        counts = expiry is not None and expiry >= self.now - LEASE_GRACE_MS
        assert result.recorded == counts
        if not counts:
            return
        code = {"success": "s", "failure": "f", "rate_limited": "r"}[outcome]
        token.window = (token.window + code)[-RISK_WINDOW:]
        token.fails = 0 if outcome == "success" else token.fails + 1
        token.ewma = latency if token.ewma is None else token.ewma + 0.2 * (latency - token.ewma)
        before = token.cause
        if token.cause != 3:
            if token.fails >= SUSPEND_AFTER:
                token.cool, token.cause = 0, 3
            else:
                until, why = 0, 0
                if token.fails >= 3:
                    until, why = self.now + COOLDOWN_AFTER_3_MS, 1
                elif token.fails >= 2:
                    until, why = self.now + COOLDOWN_AFTER_2_MS, 1
                asked = RATE_LIMITED_DEFAULT_S if retry_after is None else retry_after
                if outcome == "rate_limited" and self.now + asked * 1000 > until:
                    until, why = self.now + asked * 1000, 2
                if until > token.cool:
                    token.cool, token.cause = until, why
        assert result.consecutive_failures == token.fails
        assert result.cooldown_until_ms == token.cool
        assert (
            result.cause == {0: None, 1: "failures", 2: "retry_after", 3: "suspended"}[token.cause]
        )
        assert result.suspended_now == (token.cause == 3 and before != 3)
        errors = sum(1 for c in token.window if c != "s") / len(token.window)
        risk = 0.7 * errors + 0.3 * min(1.0, token.ewma / LATENCY_REFERENCE_MS)
        assert result.risk == pytest.approx(risk, abs=2e-4)

    @rule(ms=st.sampled_from([1, 999, 1_000, 5_000, 30_000, 60_000, 300_000, 1_800_000]))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule(ms=st.sampled_from([3_600_000, 7_200_000, 86_400_000]))
    def advance_far(self, ms: int) -> None:
        self.now += ms

    @rule(token_id=st.sampled_from(["tok_a", "tok_b", "tok_c"]))
    def operator_re_enables(self, token_id: str) -> None:
        self.picker.reset(self.pool, token_id)
        token = self.tokens[token_id]
        token.fails, token.cool, token.cause, token.window, token.ewma = 0, 0, 0, "", None

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_window_and_no_moment_ever_exceeds_a_limit(self) -> None:
        for token in self.tokens.values():
            for at in token.picks:
                for name, width in WINDOWS:
                    inside = sum(1 for p in token.picks if at - width < p <= at)
                    assert inside <= getattr(token, name), (token.id, name, at)

    @invariant()
    def redis_agrees_on_usage_and_leases(self) -> None:
        now, usage = self.picker.usage(self.pool, list(self.tokens))
        assert now == self.now
        for token in self.tokens.values():
            seen = usage[token.id]
            for name, width in WINDOWS:
                recent = sum(1 for p in token.picks if p > self.now - width)
                assert getattr(seen, {"rpm": "minute", "rph": "hour", "rpd": "day"}[name]) == (
                    recent
                )
            held = sum(1 for e in token.leases.values() if e > self.now)
            assert seen.leases == held <= token.concurrency
            assert seen.consecutive_failures == token.fails


def test_limits_cooldowns_and_suspension_hold_under_any_interleaving(endpoints: Any) -> None:
    PickerMachine.redis = redis_client(endpoints.redis_url)
    run_state_machine_as_test(
        PickerMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
