"""How alert events reach alerting: the producer puts the event in the outbox inside its own
transaction (the record), then, after commit, publishes a wake-up on the alerts queue so
alerting records it at once instead of at its next minute sweep.

The wake-up carries no event: alerting always reads the outbox. A failed publish therefore loses
nothing, the sweep delivers the event a minute later; a duplicate wake-up costs one empty sweep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from hybrid import log

if TYPE_CHECKING:
    from hybrid.queue import Queue

ALERT_TOPIC = "alerts"
"""The outbox topic of alert events, and the queue topic of the wake-ups."""

logger = log.get_logger("hybrid.alerts")


def announce(queue_factory: Callable[[], Queue], *, events: int, producer: str) -> bool:
    """Wake alerting for `events` committed alert events; True when the wake-up was published."""
    if events <= 0:
        return False
    from hybrid.queue import QueueError

    body = json.dumps(
        {
            "kind": "alert_events",
            "events": events,
            "producer": producer,
            "at": datetime.now(timezone.utc).isoformat(),
        }
    )
    try:
        queue_factory().publish(ALERT_TOPIC, body, tags=("alert_events",))
    except QueueError as exc:
        logger.warning(
            "alert wake-up not published, the outbox sweep will deliver",
            events=events,
            error_type=type(exc).__name__,
        )
        return False
    return True
