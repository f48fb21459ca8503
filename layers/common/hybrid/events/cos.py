"""COS (object storage) trigger events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from hybrid.events import (
    MalformedEventError,
    _FrozenRecord,
    _object,
    _opt_id,
    _opt_int,
    _opt_str,
    _req_str,
    _timestamp,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CosObjectEvent(_FrozenRecord):
    """One object notification.

    ``bucket`` is the short name (without ``-<appid>``); ``key`` is the object key exactly as
    sent, not URL-decoded; ``region`` is the long form (``ap-shanghai``) whenever the event
    carries it; ``etag`` is without its surrounding quotes.
    """

    _field_names = (
        "event_name",
        "appid",
        "bucket",
        "region",
        "key",
        "size",
        "etag",
        "url",
        "event_time",
        "source_ip",
    )
    __slots__ = _field_names

    event_name: str
    appid: str
    bucket: str
    region: str
    key: str
    size: int
    etag: str | None
    url: str
    event_time: datetime | None
    source_ip: str | None

    def __init__(
        self,
        event_name: str,
        appid: str,
        bucket: str,
        region: str,
        key: str,
        size: int = 0,
        etag: str | None = None,
        url: str = "",
        event_time: datetime | None = None,
        source_ip: str | None = None,
    ) -> None:
        init = object.__setattr__
        init(self, "event_name", event_name)
        init(self, "appid", appid)
        init(self, "bucket", bucket)
        init(self, "region", region)
        init(self, "key", key)
        init(self, "size", size)
        init(self, "etag", etag)
        init(self, "url", url)
        init(self, "event_time", event_time)
        init(self, "source_ip", source_ip)

    @property
    def is_created(self) -> bool:
        return self.event_name.startswith("cos:ObjectCreated:")

    @property
    def bucket_full_name(self) -> str:
        """``<bucket>-<appid>``, the name the COS SDK expects."""
        return f"{self.bucket}-{self.appid}"


def is_cos_event(raw: object) -> bool:
    if not isinstance(raw, Mapping):
        return False
    records = raw.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and isinstance(records[0].get("cos"), Mapping)
    )


def parse_cos_event(raw: object) -> list[CosObjectEvent]:
    """The object notifications in a COS event; raises :class:`MalformedEventError` only."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("Records"), list):
        raise MalformedEventError("not a cos event: Records must be a list")
    return [_parse_record(record, index) for index, record in enumerate(raw["Records"])]


def _parse_record(record: object, index: int) -> CosObjectEvent:
    where = f"Records[{index}]"
    record = _object(record, where)
    cos = _object(record.get("cos"), f"{where}.cos")
    event = _object(record.get("event"), f"{where}.event")
    bucket_info = _object(cos.get("cosBucket"), f"{where}.cos.cosBucket")
    obj = _object(cos.get("cosObject"), f"{where}.cos.cosObject")
    appid = _opt_id(bucket_info.get("appid"), f"{where}.cos.cosBucket.appid")
    bucket = _opt_str(bucket_info.get("name"), f"{where}.cos.cosBucket.name")
    if not appid or not bucket:
        raise MalformedEventError(f"{where}.cos.cosBucket needs appid and name")
    if bucket.endswith(f"-{appid}"):
        bucket = bucket[: -len(appid) - 1]
    url = _opt_str(obj.get("url"), f"{where}.cos.cosObject.url") or ""
    request = _object(event.get("requestParameters"), f"{where}.event.requestParameters")
    return CosObjectEvent(
        event_name=_req_str(event.get("eventName"), f"{where}.event.eventName"),
        appid=appid,
        bucket=bucket,
        region=_region(bucket_info, url, f"{where}.cos.cosBucket"),
        key=_object_key(_req_str(obj.get("key"), f"{where}.cos.cosObject.key"), appid, bucket),
        size=_opt_int(obj.get("size"), f"{where}.cos.cosObject.size") or 0,
        etag=_etag(_object(obj.get("meta"), f"{where}.cos.cosObject.meta"), where),
        url=url,
        event_time=_timestamp(event.get("eventTime"), f"{where}.event.eventTime", epoch_divisor=1),
        source_ip=_opt_str(
            request.get("requestSourceIP"), f"{where}.event.requestParameters.requestSourceIP"
        ),
    )


def _object_key(raw_key: str, appid: str, bucket: str) -> str:
    """``/<appid>/<bucket>/<key>`` → ``<key>``; a key without that prefix is kept as sent."""
    for prefix in (f"/{appid}/{bucket}/", f"/{appid}/{bucket}-{appid}/"):
        if raw_key.startswith(prefix):
            return raw_key[len(prefix) :]
    return raw_key


def _region(bucket_info: Mapping[str, Any], url: str, where: str) -> str:
    """``cosRegion`` (long form) first, then the region in the object URL, then ``region``.

    The older event only has the short form (``cd``), but its URL names the long one.
    """
    long_form = _opt_str(bucket_info.get("cosRegion"), f"{where}.cosRegion")
    if long_form:
        return long_form
    host = url.partition("://")[2].partition("/")[0]
    from_url = host.partition(".cos.")[2].partition(".")[0]
    if "-" in from_url:
        return from_url
    return _opt_str(bucket_info.get("region"), f"{where}.region") or ""


def _etag(meta: Mapping[str, Any], where: str) -> str | None:
    for name, value in meta.items():
        if isinstance(name, str) and name.lower() == "etag":
            etag = _opt_str(value, f"{where}.cos.cosObject.meta.ETag")
            return etag.strip('"') if etag else None
    return None
