"""The queue port: publish a message to a topic; the consumer is another function's trigger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class QueueError(Exception):
    """Publishing failed for a reason retrying will not fix (bad topic, permission, bad input)."""


class QueueUnavailableError(QueueError):
    """The queue service cannot be reached or is failing: retry later (the outbox sweep will)."""


class Queue(Protocol):
    def publish(
        self, topic: str, body: str, *, tags: Sequence[str] = (), key: str | None = None
    ) -> str:
        """Publish `body` to `topic` and return the message id.

        `tags` and `key` are hints (filtering, ordering). Not every adapter can carry them (TDMQ's
        SendMessages API has no such fields), so a consumer must find all it needs in `body`.
        """
        ...
