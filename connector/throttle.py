"""Outbound byte-rate cap for low-bandwidth links, and the retry delays of the relay."""

from __future__ import annotations

import random
import threading
import time


class TokenBucket:
    """At most `rate` bytes per second on average, bursts up to `burst` bytes.

    `take` never refuses: a caller that takes more than there is waits for the debt to be
    paid off, so one large chunk is sent whole and the next one waits instead. A rate of 0
    means no cap.
    """

    def __init__(self, rate: int, burst: int | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int, stop: threading.Event | None = None) -> float:
        """Account for `count` bytes; sleeps as long as the cap needs. Returns the wait."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= count
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
        return wait


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2^n))."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 60.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
