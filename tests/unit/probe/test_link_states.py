"""Link states with hysteresis: 3 failed probes before `disconnected`, 2 good ones before
`connected` again; the counts live in the state, so a restart resumes them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from hybrid.probe.states import LinkState, Probe, advance

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def _run(outcomes: list[bool], state: LinkState | None = None) -> list[LinkState]:
    states = []
    current = state or LinkState()
    for minute, ok in enumerate(outcomes):
        current = advance(current, Probe(ok=ok, at=T0 + timedelta(minutes=minute), latency_ms=5))
        states.append(current)
    return states


def test_a_link_goes_down_after_three_failed_probes_and_up_after_two_good_ones():
    states = _run([True, False, False, False, True, True])
    assert [s.state for s in states] == [
        "connected", "connected", "connected", "disconnected", "disconnected", "connected"
    ]  # fmt: skip
    assert states[3].since == T0 + timedelta(minutes=3)
    assert states[5].since == T0 + timedelta(minutes=5)
    assert states[3].last_ok_at == T0


def test_a_single_lost_probe_changes_nothing():
    states = _run([True, False, True, False, False, True])
    assert {s.state for s in states} == {"connected"}
    assert states[-1].since == T0


def test_a_bouncing_link_stays_down_until_two_good_probes_in_a_row():
    states = _run([False, False, False, True, False, True, False, True, True])
    assert [s.state for s in states][2:] == [
        "disconnected", "disconnected", "disconnected", "disconnected", "disconnected",
        "disconnected", "connected",
    ]  # fmt: skip


def test_slow_or_partly_down_is_degraded_not_disconnected():
    current = advance(LinkState(), Probe(ok=True, at=T0, latency_ms=2500, degraded=True))
    assert current.state == "degraded"
    current = advance(current, Probe(ok=True, at=T0 + timedelta(minutes=1), latency_ms=20))
    assert current.state == "connected"


def test_a_new_link_is_unknown_until_it_answers_or_fails_three_times():
    states = _run([False, False, False])
    assert [s.state for s in states] == ["unknown", "unknown", "disconnected"]


@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_the_state_follows_the_rules_for_any_sequence(outcomes):
    states = _run(outcomes)
    for index, state in enumerate(states):
        tail = outcomes[: index + 1]
        if len(tail) >= 3 and not any(tail[-3:]):
            assert state.state == "disconnected"
        if tail[-1] and state.state == "disconnected":
            assert not (len(tail) >= 2 and all(tail[-2:]))  # two good ones would lift it
