"""Publishing to TDMQ for Apache Pulsar through the TencentCloud API (tencentcloud-sdk-python-tdmq).

Action `SendMessages` (version 2020-02-17, "send a single message", 1000 requests/s; API docs
1179/53440, intl 1110/44129): `Topic` (full path, ``persistent://<cluster id>/<namespace>/<topic>``
as the console and the Pulsar SDK docs 1110/42950 write it) and `Payload`; the response carries
`MessageId` and `ErrorMsg` (empty when the send succeeded). `SendMsg` is documented as a test-only
API (20/s, no message id) and is not used. `SendMessages` has no fields for message properties or
keys, so `tags` and `key` are not transmitted.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from hybrid import tencent
from hybrid.config import FunctionSettings
from hybrid.log import get_logger
from hybrid.queue.port import QueueError, QueueUnavailableError

ACTION = "SendMessages"
# Server-side send timeout (seconds), below the HTTP timeout so TDMQ answers before we give up.
SEND_TIMEOUT_SECONDS = 3
HTTP_TIMEOUT_SECONDS = 5

_log = get_logger(__name__)


class TdmqSettings(FunctionSettings):
    """TDMQ for Pulsar target. Required when `QUEUE_BACKEND=tdmq` (checked by QueueSettings)."""

    tdmq_cluster_id: str | None = None
    tdmq_environment: str | None = None
    # Only to reach a non-default API endpoint (a VPC-internal domain, or a loopback test server).
    tdmq_endpoint: str | None = None


class TdmqQueue:
    """Publishes with `SendMessages`, reusing the API client while the credentials are unchanged."""

    def __init__(
        self,
        *,
        cluster_id: str,
        environment: str,
        region: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        if not cluster_id or not environment:
            raise QueueError("tdmq needs a cluster id and an environment (namespace)")
        self.cluster_id = cluster_id
        self.environment = environment
        self._region = region
        self._endpoint = endpoint
        self._client: Any = None
        self._client_identity: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: TdmqSettings) -> TdmqQueue:
        return cls(
            cluster_id=settings.tdmq_cluster_id or "",
            environment=settings.tdmq_environment or "",
            endpoint=settings.tdmq_endpoint,
        )

    def topic_path(self, topic: str) -> str:
        """``persistent://<cluster>/<environment>/<topic>`` unless `topic` is already a path."""
        if "://" in topic:
            return topic
        if topic.count("/") == 2:
            return f"persistent://{topic}"
        return f"persistent://{self.cluster_id}/{self.environment}/{topic}"

    def publish(
        self, topic: str, body: str, *, tags: Sequence[str] = (), key: str | None = None
    ) -> str:
        if not topic:
            raise QueueError("topic must not be empty")
        if not body:
            raise QueueError("tdmq rejects an empty message body")
        if tags or key:
            _log.debug("tdmq drops message tags and key", topic=topic)
        from tencentcloud.tdmq.v20200217 import models

        request = models.SendMessagesRequest()
        request.Topic = self.topic_path(topic)
        request.Payload = body
        request.SendTimeout = SEND_TIMEOUT_SECONDS
        try:
            with tencent.sdk_errors(f"tdmq {ACTION}"):
                response = self._sdk_client().SendMessages(request)
        except tencent.TencentCloudError as exc:
            error = QueueUnavailableError if exc.unavailable else QueueError
            raise error(f"publish to topic {topic} failed: {exc}") from None
        if response.ErrorMsg:
            raise QueueError(
                f"publish to topic {topic} failed: tdmq error "
                f"request_id={response.RequestId or '-'}: {str(response.ErrorMsg)[:300]}"
            )
        if not response.MessageId:
            raise QueueError(
                f"publish to topic {topic} failed: no message id "
                f"request_id={response.RequestId or '-'}"
            )
        return str(response.MessageId)

    def _sdk_client(self) -> Any:
        from tencentcloud.tdmq.v20200217 import tdmq_client

        credential = tencent.scf_credential()
        identity = tuple(credential.get_credential_info())
        with self._lock:
            if self._client is None or self._client_identity != identity:
                self._client = tdmq_client.TdmqClient(
                    credential,
                    self._region or tencent.region(),
                    tencent.client_profile(self._endpoint, timeout=HTTP_TIMEOUT_SECONDS),
                )
                self._client_identity = identity
            return self._client
