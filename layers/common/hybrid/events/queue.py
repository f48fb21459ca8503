"""Queue trigger events: TDMQ (Pulsar) through EventBridge, and the legacy CMQ topic shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from hybrid.events import (
    MalformedEventError,
    _FrozenRecord,
    _object,
    _opt_id,
    _opt_str,
    _timestamp,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal


class QueueMessage(_FrozenRecord):
    """One delivered message; ``topic`` is the short topic name, without tenant or namespace."""

    _field_names = ("source", "message_id", "body", "topic", "tags", "published_at", "subscription")
    __slots__ = _field_names

    source: Literal["tdmq", "cmq"]
    message_id: str
    body: str
    topic: str
    tags: tuple[str, ...]
    published_at: datetime | None
    subscription: str | None

    def __init__(
        self,
        source: Literal["tdmq", "cmq"],
        message_id: str,
        body: str,
        topic: str,
        tags: tuple[str, ...] = (),
        published_at: datetime | None = None,
        subscription: str | None = None,
    ) -> None:
        init = object.__setattr__
        init(self, "source", source)
        init(self, "message_id", message_id)
        init(self, "body", body)
        init(self, "topic", topic)
        init(self, "tags", tuple(tags))
        init(self, "published_at", published_at)
        init(self, "subscription", subscription)

    def json_body(self) -> Any:
        """The body parsed as JSON; :class:`MalformedEventError` when it is not JSON."""
        import json

        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            raise MalformedEventError(f"message {self.message_id} body is not JSON") from exc


def is_queue_event(raw: object) -> bool:
    return _is_tdmq(raw) or _is_cmq(raw)


def parse_queue_event(raw: object) -> list[QueueMessage]:
    """The messages in a TDMQ or CMQ-topic event; raises :class:`MalformedEventError` only."""
    if isinstance(raw, Mapping) and _is_tdmq(raw):
        return [_parse_tdmq(raw)]
    if isinstance(raw, Mapping) and isinstance(raw.get("Records"), list):
        return [_parse_cmq(record, index) for index, record in enumerate(raw["Records"])]
    raise MalformedEventError("not a queue event: expected a TDMQ or CMQ topic event")


def _is_tdmq(raw: object) -> bool:
    """The EventBridge envelope with a TDMQ source (``type`` ``connector:tdmq``)."""
    if not isinstance(raw, Mapping) or "specversion" not in raw:
        return False
    kind, source = raw.get("type"), raw.get("source")
    return (isinstance(kind, str) and "tdmq" in kind.lower()) or (
        isinstance(source, str) and "tdmq" in source.lower()
    )


def _is_cmq(raw: object) -> bool:
    if not isinstance(raw, Mapping):
        return False
    records = raw.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and "CMQ" in records[0]
    )


def _parse_tdmq(raw: Mapping[str, Any]) -> QueueMessage:
    data = _object(raw.get("data"), "data")
    subject = _opt_str(raw.get("subject"), "subject") or _opt_str(raw.get("subjuect"), "subjuect")
    subject_topic, subject_subscription = _subject_parts(subject or "")
    message_id = _opt_id(data.get("msgId"), "data.msgId") or _opt_id(raw.get("id"), "id")
    if not message_id:
        raise MalformedEventError("data.msgId is missing")
    topic = _opt_str(data.get("topic"), "data.topic")
    return QueueMessage(
        source="tdmq",
        message_id=message_id,
        body=_opt_str(data.get("msgBody"), "data.msgBody") or "",
        topic=_short_topic(topic) if topic else subject_topic,
        tags=_tags(data.get("tags"), "data.tags"),
        published_at=_timestamp(raw.get("time"), "time", epoch_divisor=1000),
        subscription=_opt_str(data.get("subscriptionName"), "data.subscriptionName")
        or subject_subscription,
    )


def _parse_cmq(record: object, index: int) -> QueueMessage:
    where = f"Records[{index}].CMQ"
    message = _object(_object(record, f"Records[{index}]").get("CMQ"), where)
    if not message:
        raise MalformedEventError(f"{where} is missing")
    message_id = _opt_id(message.get("msgId"), f"{where}.msgId")
    if not message_id:
        raise MalformedEventError(f"{where}.msgId is missing")
    return QueueMessage(
        source="cmq",
        message_id=message_id,
        body=_opt_str(message.get("msgBody"), f"{where}.msgBody") or "",
        topic=_opt_str(message.get("topicName"), f"{where}.topicName") or "",
        tags=_tags(message.get("msgTag"), f"{where}.msgTag"),
        published_at=_timestamp(
            message.get("publishTime"), f"{where}.publishTime", epoch_divisor=1
        ),
        subscription=_opt_str(message.get("subscriptionName"), f"{where}.subscriptionName"),
    )


def _short_topic(topic: str) -> str:
    """``persistent://appid/namespace/topic-1`` → ``topic-1``."""
    return topic.rstrip("/").rsplit("/", 1)[-1]


def _subject_parts(subject: str) -> tuple[str, str | None]:
    """Topic and subscription from the CloudEvents subject.

    The subject reads ``qcs::tdmq:<region>:<account>:topicName/<cluster>/<env>/<topic>/<sub>``.
    """
    resource = subject.rsplit(":", 1)[-1].split("/")
    if len(resource) == 5 and resource[0] == "topicName":
        return resource[3], resource[4] or None
    return "", None


def _tags(value: object, where: str) -> tuple[str, ...]:
    """Tags arrive as ``"a,b"``, ``"a, b"`` or ``["a", "b"]``."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list):
        items = value
    else:
        raise MalformedEventError(f"{where} must be a string or a list of strings")
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise MalformedEventError(f"{where} must be a string or a list of strings")
        tag = item.strip()
        if tag:
            tags.append(tag)
    return tuple(tags)
