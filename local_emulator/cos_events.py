"""COS object events: the stack's COS server notifies the gateway, this module builds the SCF COS
event and invokes every matching `cos` trigger asynchronously (retries, then dead letter).

Notification body (from the stack): `{"event_name", "bucket", "key", "size", "etag",
"source_ip", "request_id"}`, `bucket` being the full COS name `<short>-<appid>`.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any
from urllib.parse import quote

from local_emulator import LOCAL_APPID, log_json
from local_emulator.descriptor import CosTrigger, ProjectSpec
from local_emulator.invoker import AsyncInvoker

_log = logging.getLogger("local_emulator.cos_events")

# COS's short region codes, as in `cosBucket.region` of real events.
_SHORT_REGIONS = {
    "ap-beijing": "bj",
    "ap-chengdu": "cd",
    "ap-chongqing": "cq",
    "ap-guangzhou": "gz",
    "ap-hongkong": "hk",
    "ap-nanjing": "nj",
    "ap-shanghai": "sh",
    "ap-singapore": "sg",
    "ap-tokyo": "tky",
    "ap-seoul": "kr",
    "ap-bangkok": "th",
    "ap-mumbai": "in",
    "eu-frankfurt": "de",
    "na-ashburn": "va",
    "na-siliconvalley": "sv",
    "na-toronto": "ca",
}


def split_bucket(bucket: str) -> tuple[str, str | None]:
    """`uploads-1250000000` → (`uploads`, `1250000000`); a bare name has no appid."""
    short, _, appid = bucket.rpartition("-")
    if short and appid.isdigit():
        return short, appid
    return bucket, None


def _event_name(name: str) -> str:
    return name if name.startswith("cos:") else f"cos:{name}"


def event_matches(pattern: str, event_name: str) -> bool:
    """`cos:ObjectCreated:*` matches every created event; other patterns match exactly."""
    pattern, event_name = _event_name(pattern), _event_name(event_name)
    if pattern.endswith(":*"):
        return event_name.startswith(pattern[:-1])
    return pattern == event_name


def trigger_matches(trigger: CosTrigger, bucket: str, key: str, event_name: str) -> bool:
    short, appid = split_bucket(bucket)
    if trigger.bucket_short != short:
        return False
    if trigger.bucket_appid and appid and trigger.bucket_appid != appid:
        return False
    if not (key.startswith(trigger.prefix) and key.endswith(trigger.suffix)):
        return False
    return any(event_matches(pattern, event_name) for pattern in trigger.events)


def cos_event(
    notification: dict[str, Any], *, region: str, function_name: str, namespace: str = "default"
) -> dict[str, Any]:
    """The COS event shaped like the real 2022 capture (PLATFORM-NOTES §2.5)."""
    short, appid = split_bucket(str(notification.get("bucket", "")))
    appid = appid or LOCAL_APPID
    key = str(notification.get("key", "")).lstrip("/")
    etag = str(notification.get("etag") or "")
    if etag and not etag.startswith('"'):
        etag = f'"{etag}"'
    return {
        "Records": [
            {
                "cos": {
                    "cosBucket": {
                        "appid": appid,
                        "cosRegion": region,
                        "name": short,
                        "region": _SHORT_REGIONS.get(region, region),
                        "s3Region": region,
                    },
                    "cosNotificationId": "unkown",  # sic: the platform's spelling
                    "cosObject": {
                        "key": f"/{appid}/{short}/{key}",
                        "meta": {
                            "Content-Type": str(notification.get("content_type") or ""),
                            "ETag": etag,
                            "x-cos-request-id": str(notification.get("request_id") or ""),
                            "x-cos-storage-class": "Standard",
                        },
                        "size": int(notification.get("size") or 0),
                        "url": f"http://{short}-{appid}.cos.{region}.myqcloud.com/{quote(key)}",
                        "vid": "",
                    },
                    "cosSchemaVersion": "1.0",
                },
                "event": {
                    "eventName": _event_name(str(notification.get("event_name", ""))),
                    "eventQueue": (
                        f"qcs:0:scf:{region}:appid/{appid}:{namespace}.{function_name}.$DEFAULT"
                    ),
                    "eventSource": "qcs::cos",
                    "eventTime": int(time.time()),
                    "eventVersion": "1.0",
                    "reqid": random.randint(100_000_000, 999_999_999),
                    "requestParameters": {
                        "requestHeaders": {},
                        "requestSourceIP": str(notification.get("source_ip") or "127.0.0.1"),
                    },
                    "reservedInfo": "",
                },
            }
        ]
    }


class CosEventDispatcher:
    """Callable for the gateway's `/_emulator/cos-events`: returns the function keys invoked."""

    def __init__(
        self, project: ProjectSpec, async_invoker: AsyncInvoker, *, region: str | None = None
    ) -> None:
        self._project = project
        self._async = async_invoker
        self._region = region or project.region
        self._triggers: list[CosTrigger] = [t for t in project.triggers("cos") if t.enabled]

    def __call__(self, notification: dict[str, Any]) -> list[str]:
        bucket = str(notification.get("bucket", ""))
        key = str(notification.get("key", "")).lstrip("/")
        event_name = str(notification.get("event_name", ""))
        invoked: list[str] = []
        for trigger in self._triggers:
            if trigger.function in invoked or not trigger_matches(trigger, bucket, key, event_name):
                continue
            spec = self._project.functions[trigger.function]
            event = cos_event(
                notification,
                region=self._region,
                function_name=spec.name,
                namespace=self._project.namespace,
            )
            self._async.submit(trigger.function, event, trigger="cos")
            invoked.append(trigger.function)
        log_json(
            _log,
            logging.INFO,
            "cos event",
            event_name=event_name,
            bucket=bucket,
            functions=invoked,
        )
        return invoked
