"""The local queue: Redis lists that the layer's `LocalQueue` publishes into, delivered to
`eventbridge` (TDMQ event) and `cmq` (legacy CMQ event) triggers with SCF's async retry rule.

Wire format: `LPUSH hybrid:localq:{<topic>}` of JSON `{"id", "body", "tags", "published_at"}`.
A consumer moves each message atomically to `hybrid:localq:processing:{<topic>}` and removes it
only once every subscribed function has succeeded or been dead-lettered, so a crash loses
nothing: on start, whatever is left in processing goes back to the queue.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from local_emulator import LOCAL_APPID, log_json
from local_emulator.descriptor import ProjectSpec, QueueTrigger
from local_emulator.invoker import AsyncInvoker, DeadLetter, InvocationResult

_log = logging.getLogger("local_emulator.queue")


def queue_key(topic: str) -> str:
    return f"hybrid:localq:{{{topic}}}"


def processing_key(topic: str) -> str:
    return f"hybrid:localq:processing:{{{topic}}}"


def dead_key(topic: str) -> str:
    return f"hybrid:localq:dead:{{{topic}}}"


def _rfc3339(moment: dt.datetime) -> str:
    return (
        moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def publish(client: redis.Redis, topic: str, body: str, tags: Sequence[str] = ()) -> str:
    """Publish like the layer's `LocalQueue` does (for tests, the CLI and the demo)."""
    message_id = uuid.uuid4().hex
    message = {
        "id": message_id,
        "body": body,
        "tags": list(tags),
        "published_at": _rfc3339(dt.datetime.now(dt.timezone.utc)),
    }
    client.lpush(queue_key(topic), json.dumps(message))
    return message_id


def _published(message: dict[str, Any]) -> dt.datetime:
    raw = str(message.get("published_at") or "")
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.now(dt.timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _tags(message: dict[str, Any]) -> str:
    tags = message.get("tags") or []
    return ",".join(str(t) for t in tags) if isinstance(tags, list) else str(tags)


def tdmq_event(message: dict[str, Any], trigger: QueueTrigger, region: str) -> dict[str, Any]:
    """TDMQ (Pulsar) through EventBridge (PLATFORM-NOTES §2.9)."""
    published_ms = int(_published(message).timestamp() * 1000)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "connector:tdmq",
        "source": "tdmq.cloud.tencent",
        "subject": (
            f"qcs::tdmq:{region}:uin/0:topicName/local/default/{trigger.topic}/{trigger.subscription}"
        ),
        "time": str(int(time.time() * 1000)),
        "region": region,
        "datacontenttype": "application/json;charset=utf-8",
        "data": {
            "topic": f"persistent://{LOCAL_APPID}/default/{trigger.topic}",
            "tags": _tags(message),
            "TopicType": 0,
            "subscriptionName": trigger.subscription,
            "toTimestamp": str(published_ms),
            "partitions": "0",
            "msgId": str(message.get("id", "")),
            "msgBody": str(message.get("body", "")),
        },
    }


def cmq_event(message: dict[str, Any], trigger: QueueTrigger) -> dict[str, Any]:
    """The legacy CMQ topic event (PLATFORM-NOTES §2.7)."""
    return {
        "Records": [
            {
                "CMQ": {
                    "type": "topic",
                    "topicOwner": int(LOCAL_APPID),
                    "topicName": trigger.topic,
                    "subscriptionName": trigger.subscription,
                    "publishTime": _rfc3339(_published(message)),
                    "msgId": str(message.get("id", "")),
                    "requestId": uuid.uuid4().hex,
                    "msgBody": str(message.get("body", "")),
                    "msgTag": _tags(message),
                }
            }
        ]
    }


class _Delivery:
    """One message in flight to every subscriber of its topic."""

    def __init__(self, raw: bytes | str, pending: int) -> None:
        self.raw = raw
        self.pending = pending
        self.lock = threading.Lock()

    def done(self) -> bool:
        with self.lock:
            self.pending -= 1
            return self.pending == 0


class QueueConsumer:
    """One consumer thread per subscribed topic."""

    def __init__(
        self,
        project: ProjectSpec,
        async_invoker: AsyncInvoker,
        client: redis.Redis,
        *,
        block_s: float = 1.0,
    ) -> None:
        self._project = project
        self._async = async_invoker
        self._client = client
        self._block_s = block_s
        self._subscribers: dict[str, list[QueueTrigger]] = {}
        for trigger in project.triggers("eventbridge") + project.triggers("cmq"):
            if trigger.enabled:
                self._subscribers.setdefault(trigger.topic, []).append(trigger)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def topics(self) -> list[str]:
        return sorted(self._subscribers)

    def recover(self) -> int:
        """Put messages a previous run left in processing back at the head of their queue."""
        moved = 0
        for topic in self._subscribers:
            while self._client.lmove(processing_key(topic), queue_key(topic), "LEFT", "RIGHT"):
                moved += 1
        if moved:
            log_json(_log, logging.WARNING, "queue messages requeued", count=moved)
        return moved

    def start(self) -> None:
        self.recover()
        for topic in self._subscribers:
            thread = threading.Thread(
                target=self._consume, args=(topic,), name=f"queue-{topic}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._block_s + 5)
        self._threads.clear()

    def _consume(self, topic: str) -> None:
        while not self._stop.is_set():
            try:
                raw = self._client.blmove(
                    queue_key(topic),
                    processing_key(topic),
                    self._block_s,  # type: ignore[arg-type]  # Redis >= 6 takes fractions
                    "RIGHT",
                    "LEFT",
                )
                if raw is not None:
                    self._dispatch(topic, raw)
            except redis.RedisError as exc:
                log_json(_log, logging.ERROR, "queue redis error", topic=topic, error=str(exc))
                self._stop.wait(1.0)

    def _dispatch(self, topic: str, raw: bytes | str) -> None:
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("message is not a JSON object")
        except ValueError as exc:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            entry = {"raw": text, "error": f"invalid message: {exc}"}
            # One MULTI/EXEC: the message is in exactly one of the two lists at any time.
            pipe = self._client.pipeline(transaction=True)
            pipe.lpush(dead_key(topic), json.dumps(entry))
            pipe.lrem(processing_key(topic), 1, raw)  # type: ignore[arg-type]
            pipe.execute()
            log_json(
                _log,
                logging.ERROR,
                "queue message dead-lettered",
                topic=topic,
                reason="invalid message",
            )
            return
        subscribers = self._subscribers[topic]
        delivery = _Delivery(raw, len(subscribers))
        for trigger in subscribers:
            if trigger.kind == "cmq":
                event = cmq_event(message, trigger)
            else:
                event = tdmq_event(message, trigger, self._project.region)

            def on_done(
                result: InvocationResult,
                letter: DeadLetter | None,
                trigger: QueueTrigger = trigger,
            ) -> None:
                self._finish(topic, message, delivery, trigger, result, letter)

            self._async.submit(trigger.function, event, trigger=trigger.kind, on_done=on_done)

    def _finish(
        self,
        topic: str,
        message: dict[str, Any],
        delivery: _Delivery,
        trigger: QueueTrigger,
        result: InvocationResult,
        letter: DeadLetter | None,
    ) -> None:
        pipe = self._client.pipeline(transaction=True)
        if letter is not None:
            entry = {
                **message,
                "error": result.error,
                "attempts": letter.attempts,
                "function": trigger.function,
                "subscription": trigger.subscription,
            }
            pipe.lpush(dead_key(topic), json.dumps(entry))
            log_json(
                _log,
                logging.ERROR,
                "queue message dead-lettered",
                topic=topic,
                message_id=message.get("id"),
                function=trigger.function,
                attempts=letter.attempts,
            )
        if delivery.done():
            pipe.lrem(processing_key(topic), 1, delivery.raw)  # type: ignore[arg-type]
        # Dead letter and removal land together (MULTI/EXEC), so nothing is seen half-moved.
        pipe.execute()
