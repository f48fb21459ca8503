"""The local emulator's queue: a Redis list per topic that the emulator turns into queue events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from hybrid.cache import CacheError, CacheUnavailableError, redis_errors
from hybrid.queue.port import QueueError, QueueUnavailableError

if TYPE_CHECKING:
    import redis

KEY_FORMAT = "hybrid:localq:{{{topic}}}"


def topic_key(topic: str) -> str:
    """The Redis list holding `topic`'s messages (the braces make the topic a cluster hash tag)."""
    return KEY_FORMAT.format(topic=topic)


class LocalQueue:
    """LPUSHes ``{"id", "body", "tags", "published_at"}`` JSON; the emulator pops from the right.

    `key` has no meaning for a single list and is not stored.
    """

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    def publish(
        self, topic: str, body: str, *, tags: Sequence[str] = (), key: str | None = None
    ) -> str:
        if not topic:
            raise QueueError("topic must not be empty")
        message_id = uuid.uuid4().hex
        payload = json.dumps(
            {
                "id": message_id,
                "body": body,
                "tags": [str(tag) for tag in tags],
                "published_at": _rfc3339_now(),
            },
            ensure_ascii=False,
        )
        try:
            with redis_errors():
                self._redis.lpush(topic_key(topic), payload)
        except CacheUnavailableError as exc:
            raise QueueUnavailableError(f"local queue unavailable: topic={topic}") from exc
        except CacheError as exc:
            raise QueueError(f"local queue publish failed: topic={topic}") from exc
        return message_id


def _rfc3339_now() -> str:
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
