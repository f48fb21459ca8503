"""Publishing messages: the `Queue` port, its TDMQ and local-emulator adapters, and a factory.

`QUEUE_BACKEND=tdmq` publishes to TDMQ for Pulsar (cloud); `local` pushes to the emulator's
Redis lists. Either way a timer sweep of the PostgreSQL outbox is the delivery guarantee.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BeforeValidator, model_validator

from hybrid.queue.local import LocalQueue
from hybrid.queue.port import Queue, QueueError, QueueUnavailableError
from hybrid.queue.tdmq import TdmqQueue, TdmqSettings

if TYPE_CHECKING:
    import redis

__all__ = [
    "LocalQueue",
    "Queue",
    "QueueError",
    "QueueSettings",
    "QueueUnavailableError",
    "TdmqQueue",
    "TdmqSettings",
    "clear_queues",
    "queue",
]


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


class QueueSettings(TdmqSettings):
    # Empty (a descriptor's unset variable): no queue; publishers then rely on the outbox sweep.
    queue_backend: Annotated[Literal["tdmq", "local"] | None, BeforeValidator(_empty_is_none)] = (
        "local"
    )

    @model_validator(mode="after")
    def _tdmq_target_is_complete(self) -> QueueSettings:
        if self.queue_backend == "tdmq" and not (self.tdmq_cluster_id and self.tdmq_environment):
            raise ValueError("QUEUE_BACKEND=tdmq needs TDMQ_CLUSTER_ID and TDMQ_ENVIRONMENT")
        return self


_tdmq_queues: dict[tuple[str, str, str | None], TdmqQueue] = {}
_lock = threading.Lock()


def queue(
    settings: QueueSettings, redis_client_factory: Callable[[], redis.Redis] | None = None
) -> Queue:
    """The queue the settings select.

    TDMQ queues are cached by target (warm invocations reuse the API client). A local queue is a
    thin wrapper built per call around the client `redis_client_factory` returns (use the cached
    `hybrid.cache.redis_client`).
    """
    if settings.queue_backend is None:
        raise QueueError("no queue is configured (QUEUE_BACKEND is empty)")
    if settings.queue_backend == "local":
        if redis_client_factory is None:
            raise QueueError("the local queue needs a redis client factory")
        return LocalQueue(redis_client_factory())
    target = (
        settings.tdmq_cluster_id or "",
        settings.tdmq_environment or "",
        settings.tdmq_endpoint,
    )
    with _lock:
        cached = _tdmq_queues.get(target)
        if cached is None:
            cached = _tdmq_queues[target] = TdmqQueue.from_settings(settings)
    return cached


def clear_queues() -> None:
    with _lock:
        _tdmq_queues.clear()
