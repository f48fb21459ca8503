"""The state of one link (cloud↔connector, or connector↔source) from its probes, with
hysteresis: a link is called `disconnected` only after `down_after` failed probes in a row and
`connected` again only after `up_after` good ones, so one lost probe never pages anyone and a
bouncing link does not flap.

States: `unknown` (never probed), `connected`, `degraded` (up, but slower than its latency
threshold or with some sources down), `disconnected`. Everything the decision needs is in
`LinkState`, which is stored: a cold start or a redeploy resumes the counts where they were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

State = Literal["unknown", "connected", "degraded", "disconnected"]
STATES: tuple[State, ...] = ("unknown", "connected", "degraded", "disconnected")
DOWN_AFTER = 3
UP_AFTER = 2


@dataclass(frozen=True)
class Probe:
    """One probe's outcome."""

    ok: bool
    at: datetime
    latency_ms: float | None = None
    degraded: bool = False
    error: str | None = None


@dataclass(frozen=True)
class LinkState:
    state: State = "unknown"
    since: datetime | None = None
    failures: int = 0
    successes: int = 0
    last_ok_at: datetime | None = None
    last_probe_at: datetime | None = None
    latency_ms: float | None = None
    error: str | None = None


def advance(
    current: LinkState, probe: Probe, *, down_after: int = DOWN_AFTER, up_after: int = UP_AFTER
) -> LinkState:
    """The link's state after `probe`."""
    if probe.ok:
        failures, successes = 0, current.successes + 1
        healthy: State = "degraded" if probe.degraded else "connected"
        if current.state in ("unknown", "connected", "degraded") or successes >= up_after:
            state = healthy
        else:
            state = current.state  # still disconnected until enough good probes in a row
    else:
        failures, successes = current.failures + 1, 0
        # A lost probe or two: the link keeps its state.
        state = "disconnected" if failures >= down_after else current.state
    since = current.since if state == current.state and current.since else probe.at
    return replace(
        current,
        state=state,
        since=since,
        failures=failures,
        successes=successes,
        last_ok_at=probe.at if probe.ok else current.last_ok_at,
        last_probe_at=probe.at,
        latency_ms=probe.latency_ms if probe.ok else current.latency_ms,
        error=None if probe.ok else probe.error,
    )
