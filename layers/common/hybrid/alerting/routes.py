"""alerting routes (alerts, silences) and the outbox sweep that records alert events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from hybrid import audit, log, outbox
from hybrid.alerting.app import AlertingServices
from hybrid.alerts import notify, registry, store
from hybrid.alerts.announce import ALERT_TOPIC
from hybrid.auth import require
from hybrid.events.context import InvocationContext
from hybrid.http import Response, Router, UnprocessableError, json_response, no_content
from hybrid.http.router import Call
from hybrid.problems import DOMAIN_ERROR_MAP

router = Router()
ERROR_MAP = dict(DOMAIN_ERROR_MAP)
logger = log.get_logger("hybrid.alerting")

SWEEP_BATCH = 500
MAX_ATTEMPTS = 5
# Longer than any dedupe horizon of the outbox's producers (quota alerts: a calendar month).
OUTBOX_RETENTION_DAYS = 40
OUTBOX_PRUNE_BATCH = 10_000
# Resolved alerts stay in their groups this long (a resolved notice may still be owed).
RESOLVED_WINDOW = timedelta(days=1)

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["firing", "resolved"] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 200


class CreateSilenceRequest(BaseModel):
    # Not strict: times arrive as RFC 3339 strings; labels stay strings only (no coercion).
    model_config = ConfigDict(extra="forbid", frozen=True)
    matchers: dict[Label, Label] = Field(min_length=1, max_length=32)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None


class CreateChannelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    type: Literal["wecom", "email", "webhook", "dingtalk"]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    config: dict[str, Any]
    min_severity: Literal["info", "warning", "critical"] = "warning"


class SilencesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expired: bool = False


def _audit(
    call: Call[AlertingServices],
    tx: Any,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        tx,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=call.request.request_id,
        details=details or {},
    )


@router.get("/api/v1/alerts")
@require("status:read")
def list_alerts(call: Call[AlertingServices]) -> Response:
    query = call.request.query_model(AlertsQuery)
    now = datetime.now(timezone.utc)
    tenant_id = call.principal.tenant_id
    with call.services.read() as tx:
        alerts = store.list_alerts(tx, tenant_id, status=query.state, limit=query.limit)
        silences = store.list_silences(tx, tenant_id, include_expired=False)
        muting = store.inhibitors(store.firing(tx, tenant_id))
    return json_response(
        {
            "alerts": [
                alert.to_public(
                    silenced_by=store.silenced_by(silences, alert.labels, now),
                    inhibited_by=store.inhibited_by(alert, muting),
                )
                for alert in alerts
            ]
        }
    )


@router.post("/api/v1/alerts/silences")
@require("admin")
def create_silence(call: Call[AlertingServices]) -> Response:
    body = call.request.model(CreateSilenceRequest)
    now = datetime.now(timezone.utc)
    with call.services.write() as tx:
        silence = store.create_silence(
            tx,
            call.principal.tenant_id,
            matchers=body.matchers,
            starts_at=body.starts_at or now,
            ends_at=body.ends_at,
            comment=body.comment,
            created_by=call.principal.actor,
        )
        _audit(
            call,
            tx,
            "silence.create",
            "silence",
            silence.id,
            details={"matchers": silence.matchers, "ends_at": silence.ends_at.isoformat()},
        )
    return json_response(silence.to_public(now=now), 201)


@router.get("/api/v1/alerts/silences")
@require("admin")
def list_silences(call: Call[AlertingServices]) -> Response:
    query = call.request.query_model(SilencesQuery)
    now = datetime.now(timezone.utc)
    with call.services.read() as tx:
        silences = store.list_silences(tx, call.principal.tenant_id, include_expired=query.expired)
    return json_response({"silences": [s.to_public(now=now) for s in silences]})


@router.delete("/api/v1/alerts/silences/{silence_id}")
@require("admin")
def delete_silence(call: Call[AlertingServices]) -> Response:
    with call.services.write() as tx:
        store.delete_silence(tx, call.params["silence_id"], tenant_id=call.principal.tenant_id)
        _audit(call, tx, "silence.delete", "silence", call.params["silence_id"])
    return no_content()


@router.post("/api/v1/alerts/channels")
@require("admin")
def create_channel(call: Call[AlertingServices]) -> Response:
    """Checked by building its adapter (and its target against SSRF) before it is stored."""
    body = call.request.model(CreateChannelRequest, check_depth=True)
    _build(call.services, body.type, body.config)
    with call.services.write() as tx:
        channel = registry.create_channel(
            tx,
            call.services.secret_box,
            tenant_id=call.principal.tenant_id,
            channel_type=body.type,
            name=body.name,
            config=body.config,
            min_severity=body.min_severity,
        )
        _audit(
            call,
            tx,
            "alert_channel.create",
            "alert_channel",
            channel.id,
            details={"type": channel.type, "name": channel.name},
        )
    return json_response(channel.to_public(), 201)


@router.get("/api/v1/alerts/channels")
@require("admin")
def list_channels(call: Call[AlertingServices]) -> Response:
    with call.services.read() as tx:
        channels = registry.list_channels(tx, call.principal.tenant_id)
    return json_response({"channels": [channel.to_public() for channel in channels]})


@router.get("/api/v1/alerts/channels/{channel_id}")
@require("admin")
def get_channel(call: Call[AlertingServices]) -> Response:
    with call.services.read() as tx:
        channel = registry.get_channel(
            tx, call.params["channel_id"], tenant_id=call.principal.tenant_id
        )
    return json_response(channel.to_public())


@router.delete("/api/v1/alerts/channels/{channel_id}")
@require("admin")
def delete_channel(call: Call[AlertingServices]) -> Response:
    with call.services.write() as tx:
        registry.delete_channel(tx, call.params["channel_id"], tenant_id=call.principal.tenant_id)
        _audit(call, tx, "alert_channel.delete", "alert_channel", call.params["channel_id"])
    return no_content()


@router.post("/api/v1/alerts/channels/{channel_id}/test")
@require("admin")
def test_channel(call: Call[AlertingServices]) -> Response:
    """Send a test notification now; the delivery result, whatever it is (200)."""
    from hybrid.alerts.channels import Notification

    tenant_id = call.principal.tenant_id
    with call.services.read() as tx:
        channel = registry.get_channel(tx, call.params["channel_id"], tenant_id=tenant_id)
        config = registry.channel_config(tx, call.services.secret_box, channel)
    adapter = _build(call.services, channel.type, config)
    now = datetime.now(timezone.utc).isoformat()
    result = adapter.send(
        Notification(
            title=f"hybrid-sync test notification for {channel.name}",
            status="firing",
            severity="info",
            alerts=[{"labels": {"alertname": "TestNotification"}, "starts_at": now}],
            group_key=f"test:{channel.id}",
            tenant_id=tenant_id,
        )
    )
    return json_response(
        {
            "ok": result.ok,
            "status": result.status,
            "retryable": result.retryable,
            "retry_after_s": result.retry_after_s,
            "detail": result.detail,
        }
    )


def _build(services: AlertingServices, channel_type: str, config: dict[str, Any]) -> Any:
    from hybrid.alerts.channels import ChannelConfigError, build_channel
    from hybrid.alerts.ssrf import UnsafeTargetError, check_url

    allow_private = services.settings.alerts_allow_private_targets
    kind, settings = registry.adapter_type(channel_type, config)
    try:
        for name in ("url", "base_url"):
            if isinstance(settings.get(name), str):
                check_url(settings[name], allow_private=allow_private)
        return build_channel(
            kind, settings, allow_private=allow_private, redis_factory=services.redis
        )
    except (ChannelConfigError, UnsafeTargetError) as exc:
        raise UnprocessableError(f"config: {exc}") from None


def sweep(services: AlertingServices) -> dict[str, int]:
    """Record every pending alert event of the outbox; each event and its outbox row commit
    together, so an event is recorded once even when two sweeps overlap."""
    recorded = unchanged = failed = 0
    while True:
        items = outbox.claim(
            services.db, topics=[ALERT_TOPIC], limit=SWEEP_BATCH, max_attempts=MAX_ATTEMPTS
        )
        for item in items:
            try:
                with services.write() as tx:
                    alert = store.record_event(
                        tx, item.payload, event_id=item.id, at=_event_time(item.payload)
                    )
                    outbox.mark_done(tx, item.id)
            except store.AlertEventError as exc:
                outbox.mark_failed(services.db, item.id, type(exc).__name__, backoff_s=300)
                logger.warning("alert event refused", outbox_id=item.id, reason=str(exc))
                failed += 1
                continue
            if alert is None:
                unchanged += 1
            else:
                recorded += 1
        if len(items) < SWEEP_BATCH:
            break
    with services.write() as tx:
        expired = store.resolve_expired(tx, now=datetime.now(timezone.utc))
    return {"recorded": recorded, "unchanged": unchanged, "failed": failed, "expired": expired}


def _event_time(payload: dict[str, Any]) -> datetime:
    """When the producer saw the change (`at`, RFC 3339); the sweep's time otherwise."""
    raw = payload.get("at")
    moment = None
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        return datetime.now(timezone.utc)
    return moment


def notify_all(services: AlertingServices, *, now: datetime) -> dict[str, int]:
    """Queue each channel's due notifications, then send what is due in the ledger."""
    queued = 0
    with services.read() as tx:
        tenants = [
            row["tenant_id"]
            for row in tx.rows(
                "SELECT DISTINCT tenant_id FROM alert_channels WHERE deleted_at IS NULL"
            )
        ]
    for tenant_id in tenants:
        with services.write() as tx:
            alerts = store.for_notification(tx, tenant_id, resolved_since=now - RESOLVED_WINDOW)
            silences = store.list_silences(tx, tenant_id, include_expired=False)
            for channel in registry.list_channels(tx, tenant_id):
                queued += notify.plan(
                    tx,
                    tenant_id=tenant_id,
                    channel=channel,
                    alerts=alerts,
                    silences=silences,
                    now=now,
                )
    adapters: dict[str, Any] = {}

    def channel_for(delivery: notify.Delivery) -> Any:
        if delivery.channel_id not in adapters:
            with services.read() as tx:
                channel = registry.get_channel(
                    tx, delivery.channel_id, tenant_id=delivery.tenant_id
                )
                config = registry.channel_config(tx, services.secret_box, channel)
            try:
                adapters[delivery.channel_id] = _build(services, channel.type, config)
            except UnprocessableError as exc:  # e.g. its target is no longer allowed
                adapters[delivery.channel_id] = _Unusable(exc.detail or "config error")
        return adapters[delivery.channel_id]

    sent = notify.send_due(services.db, channel_for)
    return {"queued": queued, **sent}


class _Unusable:
    """A channel whose config no longer builds: every delivery fails for good."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    def send(self, notification: Any) -> Any:
        from hybrid.alerts.channels import DeliveryResult

        return DeliveryResult(ok=False, retryable=False, status="config_error", detail=self.detail)


def _record_and_notify(services: AlertingServices) -> dict[str, int]:
    summary = sweep(services)
    summary.update(notify_all(services, now=datetime.now(timezone.utc)))
    return summary


def handle_queue(event: Any, services: AlertingServices, ctx: InvocationContext) -> dict[str, int]:
    """A wake-up from a producer: record what the outbox holds and notify at once. The message
    body is not trusted for anything: the outbox is the record of every event."""
    summary = _record_and_notify(services)
    logger.info("alert wake-up", messages=len(event), **summary)
    return summary


def handle_timer(event: Any, services: AlertingServices, ctx: InvocationContext) -> dict[str, int]:
    summary = _record_and_notify(services)
    summary["outbox_pruned"] = outbox.prune_done(
        services.db, older_than_days=OUTBOX_RETENTION_DAYS, limit=OUTBOX_PRUNE_BATCH
    )
    logger.info("alert sweep", **summary)
    return summary
