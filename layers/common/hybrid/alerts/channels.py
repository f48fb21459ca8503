"""Alert channel adapters: WeCom and DingTalk group robots, signed webhooks, SMTP and Tencent SES.

Each adapter implements the `Channel` port: `send(notification) -> DeliveryResult`. A result says
whether the message was delivered and, if not, whether trying again later could help
(`retryable`, with `retry_after_s` when the receiver suggested a delay). Results and log lines
never carry the channel's secrets (robot keys, tokens, passwords, webhook secrets): they are
registered for redaction and scrubbed from every `detail`.

HTTP targets pass the SSRF guard (`hybrid.alerts.ssrf`) and are connected to by the checked
address; `allow_private` lets loopback test receivers through. Every network call has a timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote_plus, urlencode, urlsplit

from hybrid.alerts.ssrf import DEFAULT_TIMEOUT_S, UnsafeTargetError, pinned_connection
from hybrid.log import REDACTED, get_logger, redact_text, register_secret

WECOM_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
DINGTALK_BASE_URL = "https://oapi.dingtalk.com/robot/send"
WECOM_MAX_BYTES = 4096
DINGTALK_MAX_BYTES = 4096  # not documented precisely; kept as conservative as WeCom
ROBOT_MESSAGES_PER_MINUTE = 20
ROBOT_WINDOW_S = 60
WECOM_RATE_LIMITED = 45009
DINGTALK_RATE_LIMITED = 130101
MAX_RETRY_AFTER_S = 3600.0
MAX_RESPONSE_BYTES = 64 * 1024
MAX_DETAIL = 300
EMAIL_SUBJECT_MAX_CHARS = 200

ChannelType = Literal["wecom", "dingtalk", "webhook", "email", "ses"]
RedisFactory = Callable[[], Any]

_log = get_logger("hybrid.alerts.channels")


class ChannelConfigError(ValueError):
    """A channel's configuration is incomplete or invalid (the message holds no secret)."""


@dataclass
class Notification:
    """One message about a group of alerts, as every channel renders it."""

    title: str
    status: Literal["firing", "resolved"]
    severity: str
    alerts: list[dict[str, Any]]
    group_key: str
    tenant_id: str
    url: str | None = None
    id: str = field(default_factory=lambda: f"ntf_{uuid.uuid4().hex}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt."""

    ok: bool
    retryable: bool
    status: str
    detail: str = ""
    retry_after_s: float | None = None


class Channel(Protocol):
    """The port every adapter implements."""

    type: str

    def send(self, notification: Notification) -> DeliveryResult: ...


# --- rendering --------------------------------------------------------------------------------

_STATUS_LABEL = {"firing": "告警 FIRING", "resolved": "恢复 RESOLVED"}


def truncate_utf8(text: str, limit_bytes: int, marker: str = "…") -> str:
    """`text` cut to at most `limit_bytes` UTF-8 bytes on a character boundary (with `marker`)."""
    data = text.encode("utf-8")
    if len(data) <= limit_bytes:
        return text
    room = max(0, limit_bytes - len(marker.encode("utf-8")))
    return data[:room].decode("utf-8", "ignore") + (marker if room else "")


def _alert_line(alert: Mapping[str, Any]) -> str:
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    name = str(labels.get("alertname") or annotations.get("summary") or "alert")
    rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    line = f"- **{name}**"
    if rest:
        line += f" ({rest})"
    text = annotations.get("summary") or annotations.get("description") or alert.get("error")
    if text and text != name:
        line += f": {text}"
    if alert.get("starts_at"):
        line += f"\n  开始 since {alert['starts_at']}"
    if alert.get("ends_at"):
        line += f" · 结束 until {alert['ends_at']}"
    return line


def render_markdown(notification: Notification, limit_bytes: int = WECOM_MAX_BYTES) -> str:
    """A compact markdown summary, at most `limit_bytes` UTF-8 bytes."""
    status = _STATUS_LABEL.get(notification.status, notification.status.upper())
    lines = [
        f"### [{status}] {notification.title}",
        f"> 级别 severity: **{notification.severity}** · 告警数 alerts: "
        f"{len(notification.alerts)} · 租户 tenant: {notification.tenant_id}",
        "",
    ]
    lines += [_alert_line(alert) for alert in notification.alerts]
    if notification.url:
        lines += ["", f"[查看详情 details]({notification.url})"]
    return truncate_utf8("\n".join(lines), limit_bytes)


def render_text(notification: Notification) -> str:
    """The plain-text form (email bodies)."""
    return render_markdown(notification, 1 << 20).replace("**", "").replace("### ", "")


def subject_of(notification: Notification) -> str:
    status = "FIRING" if notification.status == "firing" else "RESOLVED"
    subject = f"[{status}][{notification.severity}] {notification.title}"
    return " ".join(subject.split())[:EMAIL_SUBJECT_MAX_CHARS]


def render_html(notification: Notification) -> str:
    esc = html.escape
    items = []
    for alert in notification.alerts:
        items.append(f"<li>{esc(_alert_line(alert)[2:].replace('**', ''))}</li>")
    link = (
        f'<p><a href="{esc(notification.url, quote=True)}">查看详情 details</a></p>'
        if notification.url
        else ""
    )
    return (
        f"<html><body><h3>{esc(subject_of(notification))}</h3>"
        f"<p>租户 tenant: {esc(notification.tenant_id)}</p>"
        f"<ul>{''.join(items)}</ul>{link}</body></html>"
    )


# --- shared plumbing --------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class _Base:
    type = "base"

    def __init__(self, secrets: Sequence[str | None], timeout_s: float) -> None:
        self._secrets = [s for s in secrets if s]
        for secret in self._secrets:
            register_secret(secret)
        self.timeout_s = timeout_s

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
            quoted = quote_plus(secret)
            if quoted != secret:
                text = text.replace(quoted, REDACTED)
        return redact_text(" ".join(text.split()))[:MAX_DETAIL]

    def _result(
        self,
        ok: bool,
        retryable: bool,
        status: str,
        detail: str = "",
        retry_after_s: float | None = None,
    ) -> DeliveryResult:
        result = DeliveryResult(ok, retryable, status, self._clean(detail), retry_after_s)
        _log.info(
            "alerts.delivery",
            channel=self.type,
            ok=ok,
            retryable=retryable,
            delivery_status=status,
            detail=result.detail,
            retry_after_s=retry_after_s,
        )
        return result

    def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, allow_private: bool
    ) -> _Reply:
        """POST to the checked address of `url`; raises UnsafeTargetError, OSError,
        http.client.HTTPException."""
        connection, target = pinned_connection(
            url, allow_private=allow_private, timeout=self.timeout_s
        )
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={"Content-Type": "application/json; charset=utf-8", **headers},
            )
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES)
            return _Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            connection.close()

    def _post_or_result(
        self, url: str, body: bytes, headers: Mapping[str, str], *, allow_private: bool
    ) -> _Reply | DeliveryResult:
        import http.client

        try:
            return self._post(url, body, headers, allow_private=allow_private)
        except UnsafeTargetError as exc:
            return self._result(False, False, "unsafe_target", str(exc))
        except TimeoutError:
            return self._result(False, True, "timeout", f"no answer within {self.timeout_s}s")
        except (OSError, http.client.HTTPException) as exc:
            return self._result(False, True, "network_error", f"{type(exc).__name__}: {exc}")

    def _http_failure(self, reply: _Reply) -> DeliveryResult:
        snippet = reply.body[:200].decode("utf-8", "replace")
        retryable = reply.status == 429 or reply.status >= 500
        return self._result(
            False,
            retryable,
            f"http_{reply.status}",
            snippet,
            _retry_after(reply.headers.get("retry-after")) if retryable else None,
        )


class _RobotLimiter:
    """A fixed-window counter per robot in Redis (20 messages a minute); fails open."""

    def __init__(
        self, redis_factory: RedisFactory | None, name: str, robot: str, clock: Callable[[], float]
    ) -> None:
        self._redis_factory = redis_factory
        self._prefix = f"alerts:robot:{name}:{hashlib.sha256(robot.encode()).hexdigest()[:24]}"
        self._clock = clock

    def wait_s(self) -> float | None:
        """None when a message may go now; otherwise seconds until the window ends."""
        if self._redis_factory is None:
            return None
        import redis

        now = self._clock()
        window = int(now // ROBOT_WINDOW_S)
        key = f"{self._prefix}:{window}"
        try:
            pipe = self._redis_factory().pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, ROBOT_WINDOW_S + 5)
            count = int(pipe.execute()[0])
        except (redis.RedisError, OSError) as exc:
            _log.warning("alerts.robot_limiter_unavailable", error=type(exc).__name__)
            return None
        if count <= ROBOT_MESSAGES_PER_MINUTE:
            return None
        return max((window + 1) * ROBOT_WINDOW_S - now, 0.001)


# --- robots -----------------------------------------------------------------------------------


class _Robot(_Base, ABC):
    """A chat robot (WeCom, DingTalk): a JSON POST under a per-robot rate limit; subclasses
    give the URL and the payload."""

    base_url = ""
    rate_limited_code = -2
    busy_codes: frozenset[int] = frozenset({-1})

    def __init__(
        self,
        robot: str,
        base_url: str | None,
        *,
        allow_private: bool,
        redis_factory: RedisFactory | None,
        timeout_s: float,
        clock: Callable[[], float],
        secrets: Sequence[str | None],
    ) -> None:
        super().__init__(secrets, timeout_s)
        self.url_base = base_url or self.base_url
        self.allow_private = allow_private
        self._limiter = _RobotLimiter(redis_factory, self.type, robot, clock)

    @abstractmethod
    def _url(self) -> str:
        """The robot's send URL, credentials included."""

    @abstractmethod
    def _payload(self, notification: Notification) -> dict[str, Any]:
        """The robot's message body for `notification`."""

    def send(self, notification: Notification) -> DeliveryResult:
        wait = self._limiter.wait_s()
        if wait is not None:
            return self._result(
                False, True, "rate_limited", "robot allows 20 messages a minute", wait
            )
        body = json.dumps(self._payload(notification), ensure_ascii=False).encode("utf-8")
        reply = self._post_or_result(self._url(), body, {}, allow_private=self.allow_private)
        if isinstance(reply, DeliveryResult):
            return reply
        if reply.status != 200:
            return self._http_failure(reply)
        try:
            answer = json.loads(reply.body)
            errcode = int(answer.get("errcode", -1))
            errmsg = str(answer.get("errmsg", ""))
        except (ValueError, TypeError, AttributeError):
            return self._result(False, True, "bad_response", "robot answer is not JSON")
        if errcode == 0:
            return self._result(True, False, "sent")
        detail = f"errcode={errcode} errmsg={errmsg}"
        if errcode == self.rate_limited_code:
            return self._result(False, True, "rate_limited", detail, float(ROBOT_WINDOW_S))
        return self._result(False, errcode in self.busy_codes, f"errcode_{errcode}", detail)


class WeComRobot(_Robot):
    """WeCom (企业微信) group robot, markdown message."""

    type = "wecom"
    base_url = WECOM_BASE_URL
    rate_limited_code = WECOM_RATE_LIMITED

    def __init__(self, key: str, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(key, base_url, secrets=[key], **kwargs)
        self._key = key

    def _url(self) -> str:
        return f"{self.url_base}?{urlencode({'key': self._key})}"

    def _payload(self, notification: Notification) -> dict[str, Any]:
        return {
            "msgtype": "markdown",
            "markdown": {"content": render_markdown(notification, WECOM_MAX_BYTES)},
        }


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: URL-encoded base64 HMAC-SHA256 of "<ms>\\n<secret>"."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


class DingTalkRobot(_Robot):
    """DingTalk (钉钉) group robot with the signing ("加签") security setting, markdown message."""

    type = "dingtalk"
    base_url = DINGTALK_BASE_URL
    rate_limited_code = DINGTALK_RATE_LIMITED

    def __init__(
        self, access_token: str, secret: str | None, base_url: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(access_token, base_url, secrets=[access_token, secret], **kwargs)
        self._token = access_token
        self._secret = secret
        self._clock: Callable[[], float] = kwargs["clock"]

    def _url(self) -> str:
        query = f"access_token={quote_plus(self._token)}"
        if self._secret:
            ms = int(self._clock() * 1000)
            query += f"&timestamp={ms}&sign={dingtalk_sign(self._secret, ms)}"
        return f"{self.url_base}?{query}"

    def _payload(self, notification: Notification) -> dict[str, Any]:
        return {
            "msgtype": "markdown",
            "markdown": {
                "title": truncate_utf8(subject_of(notification), 128),
                "text": render_markdown(notification, DINGTALK_MAX_BYTES),
            },
        }


# --- generic webhook --------------------------------------------------------------------------


class SignedWebhook(_Base):
    """POST the notification as JSON, signed with Standard Webhooks headers."""

    type = "webhook"
    event_type = "alert.notification"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        allow_private: bool,
        timeout_s: float,
        clock: Callable[[], float],
    ) -> None:
        from hybrid.signing import decode_secret

        super().__init__([secret], timeout_s)
        try:
            decode_secret(secret)
        except ValueError as exc:
            raise ChannelConfigError(str(exc)) from None
        self.url = url
        self._secret = secret
        self.allow_private = allow_private
        self._clock = clock

    def send(self, notification: Notification) -> DeliveryResult:
        from hybrid.signing import signed_headers

        now = self._clock()
        body = json.dumps(
            {
                "type": self.event_type,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "data": notification.to_json(),
            },
            ensure_ascii=False,
        ).encode("utf-8")
        headers = signed_headers(self._secret, notification.id, int(now), body)
        headers["User-Agent"] = "hybrid-alerts/1"
        reply = self._post_or_result(self.url, body, headers, allow_private=self.allow_private)
        if isinstance(reply, DeliveryResult):
            return reply
        if 200 <= reply.status < 300:
            return self._result(True, False, "sent", f"http_{reply.status}")
        return self._http_failure(reply)


# --- email ------------------------------------------------------------------------------------


def build_email(notification: Notification, sender: str, recipients: Sequence[str]) -> Any:
    """An `email.message.EmailMessage` with text and HTML parts, Subject, Date, Message-ID."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    message = EmailMessage()
    message["Subject"] = subject_of(notification)  # encoded-word for non-ASCII by the policy
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2].strip(" >") or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # Quoted-printable keeps the message 7-bit: no relay needs 8BITMIME or SMTPUTF8.
    message.set_content(render_text(notification), cte="quoted-printable")
    message.add_alternative(render_html(notification), subtype="html", cte="quoted-printable")
    return message


class SmtpEmail(_Base):
    """Email through an SMTP relay (STARTTLS or implicit TLS, optional login)."""

    type = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        starttls: bool,
        tls: bool,
        username: str | None,
        password: str | None,
        allow_private: bool,
        timeout_s: float,
    ) -> None:
        super().__init__([password], timeout_s)
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self.starttls, self.tls = starttls, tls
        self.username = username
        self._password = password
        self.allow_private = allow_private

    def send(self, notification: Notification) -> DeliveryResult:
        import smtplib
        import ssl
        from email.utils import parseaddr

        from hybrid.alerts.ssrf import resolve_target

        try:
            target = resolve_target(
                f"https://{_host_for_url(self.host)}:{self.port}/",
                allow_private=self.allow_private,
            )
        except UnsafeTargetError as exc:
            return self._result(False, False, "unsafe_target", str(exc).replace("webhook", "smtp"))
        message = build_email(notification, self.sender, self.recipients)
        context = ssl.create_default_context()
        try:
            with _pinned_smtp(self.tls, target.ip, self.timeout_s, context) as smtp:
                smtp.connect(self.host, self.port)
                if self.starttls and not self.tls:
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(self.username, self._password or "")
                refused = smtp.send_message(
                    message, parseaddr(self.sender)[1], [parseaddr(a)[1] for a in self.recipients]
                )
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            transient = all(400 <= code < 500 for code in codes)
            return self._result(False, transient, "recipients_refused", f"codes={codes}")
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            transient = 400 <= exc.smtp_code < 500
            return self._result(False, transient, f"smtp_{exc.smtp_code}", text)
        except TimeoutError:
            return self._result(False, True, "timeout", f"no answer within {self.timeout_s}s")
        except (smtplib.SMTPException, OSError) as exc:
            return self._result(False, True, "smtp_error", f"{type(exc).__name__}: {exc}")
        if refused:
            return self._result(True, False, "partial", f"refused {len(refused)} recipient(s)")
        return self._result(True, False, "sent")


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _pinned_smtp(tls: bool, ip: str, timeout: float, context: Any) -> Any:
    """An unconnected SMTP client whose socket goes to `ip` while TLS checks the host name."""
    import smtplib

    base: Any = smtplib.SMTP_SSL if tls else smtplib.SMTP

    class Pinned(base):  # type: ignore[misc, valid-type]
        def _get_socket(self, host: str, port: int, timeout: float) -> Any:
            # connect() has set self._host to the name: SNI and certificate use it.
            return super()._get_socket(ip, port, timeout)

    if tls:
        client = Pinned(timeout=timeout, context=context)
        # SMTP_SSL wraps with server_hostname=self._host, which connect() sets to the name.
        return client
    return Pinned(timeout=timeout)


class TencentSes(_Base):
    """Email through Tencent Cloud SES `SendEmail` (template, or the legacy simple body)."""

    type = "ses"
    action = "SendEmail"

    def __init__(
        self,
        *,
        sender: str,
        recipients: Sequence[str],
        template_id: int | None,
        region: str | None,
        endpoint: str | None,
        allow_private: bool,
        timeout_s: float,
    ) -> None:
        super().__init__([], timeout_s)
        self.sender, self.recipients = sender, list(recipients)
        self.template_id = template_id
        self.region = region
        self.endpoint = endpoint
        self.allow_private = allow_private

    def request_params(self, notification: Notification) -> dict[str, Any]:
        """The SendEmail parameters (API field names) for `notification`."""
        params: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": self.recipients,
            "Subject": subject_of(notification),
            "TriggerType": 1,
        }
        if self.template_id is not None:
            params["Template"] = {
                "TemplateID": self.template_id,
                "TemplateData": json.dumps(
                    {
                        "title": notification.title,
                        "status": notification.status,
                        "severity": notification.severity,
                        "content": render_text(notification),
                        "url": notification.url or "",
                    },
                    ensure_ascii=False,
                ),
            }
        else:
            params["Simple"] = {
                "Html": base64.b64encode(render_html(notification).encode()).decode("ascii"),
                "Text": base64.b64encode(render_text(notification).encode()).decode("ascii"),
            }
        return params

    def send(self, notification: Notification) -> DeliveryResult:
        from hybrid import tencent

        if self.endpoint:
            url = self.endpoint if "://" in self.endpoint else f"https://{self.endpoint}"
            try:
                from hybrid.alerts.ssrf import check_url

                check_url(url, allow_private=self.allow_private)
            except UnsafeTargetError as exc:
                return self._result(False, False, "unsafe_target", str(exc))
        try:
            from tencentcloud.ses.v20201002 import models, ses_client

            with tencent.sdk_errors(f"ses {self.action}"):
                client = ses_client.SesClient(
                    tencent.scf_credential(),
                    self.region or tencent.region(),
                    tencent.client_profile(self.endpoint, timeout=max(1, int(self.timeout_s))),
                )
                request = models.SendEmailRequest()
                request.from_json_string(
                    json.dumps(self.request_params(notification), ensure_ascii=False)
                )
                response = client.SendEmail(request)
        except tencent.TencentCloudError as exc:
            transient = exc.unavailable or exc.code in (
                "FailedOperation.FrequencyLimit",
                "LimitExceeded",
            )
            return self._result(False, transient, f"api_{exc.code}", str(exc))
        return self._result(True, False, "sent", f"message_id={response.MessageId}")


# --- factory ----------------------------------------------------------------------------------


def _required(config: Mapping[str, Any], name: str, kind: str) -> str:
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ChannelConfigError(f"{kind} channel needs {name!r}")
    return value.strip()


def _recipients(config: Mapping[str, Any], kind: str) -> list[str]:
    to = config.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and a for a in to):
        raise ChannelConfigError(f"{kind} channel needs a non-empty 'to' list")
    return list(to)


def _base_url(config: Mapping[str, Any], kind: str) -> str | None:
    url = config.get("base_url")
    if url is None:
        return None
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ChannelConfigError(f"{kind} channel 'base_url' must be an http(s) URL")
    return url


def build_channel(
    type: str,
    config: Mapping[str, Any],
    *,
    allow_private: bool = False,
    redis_factory: RedisFactory | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    clock: Callable[[], float] = time.time,
) -> Channel:
    """The adapter for a channel `type` configured by `config` (secrets included, resolved).

    Config keys: wecom `key`, `base_url`?; dingtalk `access_token`, `secret`?, `base_url`?;
    webhook `url`, `secret` (whsec_…); email `host`, `port`?, `from`, `to`, `starttls`?, `tls`?,
    `username`?, `password`?; ses `from`, `to`, `template_id`?, `region`?, `endpoint`?.
    Raises ChannelConfigError.
    """
    for name in ("key", "access_token", "secret", "password"):
        value = config.get(name)
        if isinstance(value, str):
            register_secret(value)
    common = {"allow_private": allow_private, "timeout_s": timeout_s}
    if type == "wecom":
        return WeComRobot(
            _required(config, "key", type),
            _base_url(config, type),
            redis_factory=redis_factory,
            clock=clock,
            **common,
        )
    if type == "dingtalk":
        secret = config.get("secret")
        return DingTalkRobot(
            _required(config, "access_token", type),
            secret if isinstance(secret, str) and secret else None,
            _base_url(config, type),
            redis_factory=redis_factory,
            clock=clock,
            **common,
        )
    if type == "webhook":
        return SignedWebhook(
            _required(config, "url", type),
            _required(config, "secret", type),
            clock=clock,
            allow_private=allow_private,
            timeout_s=timeout_s,
        )
    if type == "email":
        tls = bool(config.get("tls", False))
        port = config.get("port") or (465 if tls else 587)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ChannelConfigError("email channel 'port' must be a TCP port")
        return SmtpEmail(
            host=_required(config, "host", type),
            port=port,
            sender=_required(config, "from", type),
            recipients=_recipients(config, type),
            starttls=bool(config.get("starttls", True)),
            tls=tls,
            username=config.get("username") or None,
            password=config.get("password") or None,
            allow_private=allow_private,
            timeout_s=timeout_s,
        )
    if type == "ses":
        template_id = config.get("template_id")
        if template_id is not None and not isinstance(template_id, int):
            raise ChannelConfigError("ses channel 'template_id' must be an integer")
        return TencentSes(
            sender=_required(config, "from", type),
            recipients=_recipients(config, type),
            template_id=template_id,
            region=config.get("region") or None,
            endpoint=config.get("endpoint") or None,
            allow_private=allow_private,
            timeout_s=timeout_s,
        )
    raise ChannelConfigError(f"unknown channel type {type!r}")
