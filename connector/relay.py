"""The relay transport: the connector calls out, the cloud never calls in (PROTOCOL.md, Relay).

Two threads share a `Spool`:

- the poller long-polls ``GET …/jobs?wait=N`` (signed; the signed answer is verified, an
  unsigned or forged job list is refused) and runs each job as the *producer*: the query's
  chunks (or a ping's health report) are compressed and written to the spool;
- the *sender* posts the spool's chunks strictly in order, signing each at send time, and acts
  on the verdict: 200 → done; 409 → the job's chunks are dropped and its producer stops;
  another 4xx → the chunk is dropped and logged; 5xx or no answer → the chunk stays and is
  retried after an exponential backoff with full jitter.

Chunks an earlier process left in the spool are drained before the first poll.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from connector import __version__
from connector.config import ConnectorConfig
from connector.digests import Entry
from connector.service import QueryFailure, QueryService
from connector.spool import Spool, SpoolClosedError, SpoolEntry
from connector.throttle import Backoff, TokenBucket
from hybrid.connectors.protocol import (
    ProtocolError,
    RelayJob,
    ResultChunk,
    compress,
    dumps,
)
from hybrid.signing import WebhookVerificationError, sign_request, verify

logger = logging.getLogger(__name__)

ZSTD_LEVEL = 3
ZSTD_LEVEL_LOW_BANDWIDTH = 19
# The cloud takes at most 6 MB per chunk as sent; a larger one is split in two.
MAX_CHUNK_BYTES = 5 * 1024 * 1024
SEND_TIMEOUT_S = 60.0
DRAIN_GRACE_S = 5.0
SKEW_WARNING_S = 60.0
# Low-bandwidth: chunks whose rows were all unchanged are not sent on their own; their count
# is carried to the next chunk, up to this many rows (then a checkpoint goes out anyway).
MAX_CARRIED_SKIPS = 50_000


class RelayError(Exception):
    """A poll that did not yield a trustworthy job list (the message names why)."""


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset), or None."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


class CloudConnection:
    """One persistent HTTP(S) connection to the cloud, re-opened after a failure."""

    def __init__(self, cloud_url: str, *, timeout_s: float) -> None:
        parts = urlsplit(cloud_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _open(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._connection is None:
            if self.https:
                self._connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=timeout_s, context=ssl.create_default_context()
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=timeout_s
                )
        self._connection.timeout = timeout_s
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout_s)
        return self._connection

    def request(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); raises OSError/HTTPException after closing the connection.

        A kept-alive connection the server closed meanwhile is retried once on a new one
        (both requests are safe to repeat: polls, and chunks idempotent by seq)."""
        for attempt in (1, 2):
            with self._lock:
                reused = self._connection is not None and self._connection.sock is not None
                connection = self._open(timeout_s or self.timeout_s)
            try:
                connection.request(method, target, body=body or None, headers=dict(headers))
                response = connection.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2 or not reused:
                    raise
                continue
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            if response.will_close:
                self.close()
            return response.status, dict(response.getheaders()), payload
        raise AssertionError("unreachable")

    def interrupt(self) -> None:
        """Break a request in flight (from another thread) so a long poll ends now."""
        with self._lock:
            connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                logger.debug("interrupting the poll failed error=%s", type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class RelayClient:
    """The relay loop of one connector process; `run` blocks until `stop`."""

    def __init__(
        self, config: ConnectorConfig, service: QueryService, *, spool: Spool | None = None
    ) -> None:
        if not config.cloud_url:
            raise ValueError("the relay transport needs cloud_url")
        self.config = config
        self.service = service
        self.spool = spool or Spool(config.spool_dir, config.spool_max_bytes)
        self.instance = uuid.uuid4().hex
        self.stopping = threading.Event()
        self.bucket = TokenBucket(config.max_bytes_per_s if config.low_bandwidth else 0)
        self.cancelled: set[str] = set()
        self.last_server_time: datetime | None = None
        self.polls = 0
        self._poll = CloudConnection(config.cloud_url, timeout_s=config.poll_wait + 30)
        self._post = CloudConnection(config.cloud_url, timeout_s=SEND_TIMEOUT_S)
        self._base = self._poll.base_path
        self._sender: threading.Thread | None = None
        self._stopped_at: float | None = None
        self._job_seq = 0  # the seq the running job's next chunk gets

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> None:
        self._sender = threading.Thread(target=self._send_loop, name="relay-sender", daemon=True)
        self._sender.start()
        try:
            self._drain_leftover()
            self._poll_loop()
        finally:
            self._sender.join(timeout=DRAIN_GRACE_S + SEND_TIMEOUT_S)
            self._poll.close()
            self._post.close()
            logger.info("relay stopped spool_depth=%d", self.spool.depth)

    def stop(self) -> None:
        """Stop polling and producing; the sender finishes the chunk in flight and drains
        what it can within a short grace, the rest stays in the spool for the next start."""
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self.stopping.set()
        self._poll.interrupt()

    def _headers(self) -> dict[str, str]:
        return {
            "X-Connector-Version": __version__,
            "X-Connector-Instance": self.instance,
            "X-Spool-Depth": str(self.spool.depth),
            "User-Agent": f"hybrid-connector/{__version__}",
        }

    def _signed(self, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        headers = self._headers()
        headers.update(
            sign_request(
                self.config.secret,
                method,
                target,
                body,
                msg_id=f"msg_{uuid.uuid4().hex}",
                timestamp=int(time.time()),
            )
        )
        return headers

    def _drain_leftover(self) -> None:
        depth = self.spool.depth
        if not depth:
            return
        logger.info("draining chunks left by an earlier run before polling chunks=%d", depth)
        while self.spool.depth and not self.stopping.is_set():
            self.stopping.wait(0.05)

    # --- polling ------------------------------------------------------------------------------

    def jobs_target(self, wait: int) -> str:
        return f"{self._base}/api/v1/connectors/{quote(self.config.connector_id)}/jobs?wait={wait}"

    def poll(self, wait: int) -> list[RelayJob]:
        """One signed long poll; the answer must carry a valid signature. Raises RelayError."""
        target = self.jobs_target(wait)
        headers = self._signed("GET", target)
        headers["Accept"] = "application/json"
        try:
            status, answer_headers, body = self._poll.request(
                "GET", target, b"", headers, timeout_s=wait + 30
            )
        except (OSError, http.client.HTTPException) as exc:
            raise RelayError(f"the cloud is unreachable ({type(exc).__name__})") from None
        if status != 200:
            hint = " (check connector_id and secret)" if status in (401, 404) else ""
            raise RelayError(f"the cloud answered {status} to a poll{hint}")
        try:
            verify(answer_headers, body, [self.config.secret])
        except WebhookVerificationError as exc:
            raise RelayError(
                f"refused a job list without a valid signature ({exc.reason})"
            ) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise RelayError("the job list is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("jobs"), list):
            raise RelayError("the job list has no jobs array")
        self.last_server_time = parse_time(answer.get("server_time"))
        if self.last_server_time is not None:
            skew = abs(time.time() - self.last_server_time.timestamp())
            if skew > SKEW_WARNING_S:
                logger.warning("clock skew against the cloud skew_s=%.0f", skew)
        jobs = []
        for raw in answer["jobs"]:
            try:
                jobs.append(RelayJob.from_json(raw))
            except ProtocolError as exc:
                logger.error("ignoring a malformed job error=%s", exc)
        return jobs

    def _poll_loop(self) -> None:
        backoff = Backoff(self.config.retry_base_s, self.config.retry_cap_s)
        while not self.stopping.is_set():
            try:
                jobs = self.poll(self.config.poll_wait)
            except RelayError as exc:
                if self.stopping.is_set():
                    break
                delay = backoff.next_delay()
                logger.warning("poll failed retry_in_s=%.1f reason=%s", delay, exc)
                self.stopping.wait(delay)
                continue
            backoff.reset()
            self.polls += 1
            self._heartbeat()
            if not jobs:
                if self.config.low_bandwidth and self.config.idle_pause_s:
                    self.stopping.wait(self.config.idle_pause_s)
                continue
            for job in jobs:
                if self.stopping.is_set():
                    break
                self.run_job(job)

    def _heartbeat(self) -> None:
        """Touch the heartbeat file (``doctor --quick``, the container's health check) after
        each successful poll and each delivered chunk, so a long job keeps it fresh."""
        path = self.config.heartbeat_path
        try:
            path.touch()
            os.utime(path)
        except OSError as exc:
            logger.warning("cannot write the heartbeat file error=%s", exc.strerror)

    # --- producing ----------------------------------------------------------------------------

    def run_job(self, job: RelayJob) -> None:
        """Run one job into the spool (returns once its last chunk is spooled). A failure the
        connector did not foresee is logged (its type only) and answered as ``internal``."""
        try:
            self._run_job(job)
        except SpoolClosedError:
            logger.info("stopped while spooling job_id=%s", job.job_id)
        except Exception as exc:  # noqa: BLE001 - one job must not take the poller down
            logger.error(
                "job failed unexpectedly job_id=%s error=%s", job.job_id, type(exc).__name__
            )
            error = {"code": "internal", "message": "the connector failed to run the job"}
            chunk = ResultChunk(seq=self._job_seq, attempt=job.attempt, done=True, error=error)
            with contextlib.suppress(SpoolClosedError):
                self._spool(job, chunk, ())

    def _run_job(self, job: RelayJob) -> None:
        self._job_seq = job.first_seq
        logger.info(
            "job received job_id=%s kind=%s attempt=%d first_seq=%d",
            job.job_id,
            job.kind,
            job.attempt,
            job.first_seq,
        )
        self.cancelled.discard(job.job_id)
        if job.kind == "ping":
            health = self.service.health(transport="relay", spool_depth=self.spool.depth)
            chunk = ResultChunk(seq=job.first_seq, attempt=job.attempt, done=True, health=health)
            self._spool(job, chunk, ())
            return
        assert job.query is not None
        chunk_rows = max(1, job.chunk_rows // 2 if self.config.low_bandwidth else job.chunk_rows)
        seq = job.first_seq
        try:
            run = self.service.start(job.query, request_id=job.job_id)
            chunks = run.chunks(chunk_rows)
            total = 0
            carried = 0
            try:
                for part in chunks:
                    if self._abandoned(job):
                        return
                    total += part.read
                    if (
                        self.config.low_bandwidth
                        and not part.rows
                        and not part.last
                        and carried + part.skipped < MAX_CARRIED_SKIPS
                    ):
                        # Nothing changed in this chunk: its count rides on the next one.
                        carried += part.skipped
                        continue
                    chunk = ResultChunk(
                        seq=seq,
                        attempt=job.attempt,
                        columns=run.columns,
                        rows=part.rows,
                        row_count=len(part.rows),
                        total_rows=total,
                        skipped=part.skipped + carried,
                        cursor=part.cursor,
                        done=part.last,
                        truncated=part.last and run.truncated,
                        next_page_token=run.next_page_token if part.last else None,
                    )
                    seq = self._spool(job, chunk, part.digests)
                    carried = 0
            finally:
                chunks.close()
        except QueryFailure as failure:
            if self._abandoned(job):
                return
            chunk = ResultChunk(seq=seq, attempt=job.attempt, done=True, error=failure.to_error())
            self._spool(job, chunk, ())

    def _abandoned(self, job: RelayJob) -> bool:
        if job.job_id in self.cancelled:
            logger.info("job cancelled by the cloud, producer stops job_id=%s", job.job_id)
            return True
        return self.stopping.is_set()

    def _spool(self, job: RelayJob, chunk: ResultChunk, digests: Sequence[Entry]) -> int:
        """Compress and spool a chunk (split in two when too large); returns the next seq."""
        level = ZSTD_LEVEL_LOW_BANDWIDTH if self.config.low_bandwidth else ZSTD_LEVEL
        body = compress(
            dumps(chunk.to_json(columnar=self.config.low_bandwidth)), "zstd", level=level
        )
        if len(body) > MAX_CHUNK_BYTES and len(chunk.rows) > 1:
            return self._spool_split(job, chunk, digests)
        meta: dict[str, Any] = {
            "job_id": job.job_id,
            "seq": chunk.seq,
            "attempt": chunk.attempt,
            "encoding": "zstd",
            "rows": chunk.row_count,
            "done": chunk.done,
        }
        store = self.service.digests
        if digests and store is not None:
            batch = f"{job.job_id}/{job.attempt}/{chunk.seq}"
            store.stage(batch, digests)
            meta["digest_batch"] = batch
        while True:
            try:
                self.spool.put(meta, body, timeout=1.0)
                break
            except TimeoutError:
                if self._abandoned(job):
                    raise SpoolClosedError("the producer stopped") from None
        self._job_seq = chunk.seq + 1
        return chunk.seq + 1

    def _spool_split(self, job: RelayJob, chunk: ResultChunk, digests: Sequence[Entry]) -> int:
        half = len(chunk.rows) // 2
        head, tail = chunk.rows[:half], chunk.rows[half:]
        # Digests exist only for sent rows, in the rows' order.
        head_digests, tail_digests = digests[:half], digests[half:]
        names = job.query.cursor_columns if job.query is not None else ()
        first = ResultChunk(
            seq=chunk.seq,
            attempt=chunk.attempt,
            columns=chunk.columns,
            rows=head,
            row_count=len(head),
            total_rows=chunk.total_rows - len(tail) - chunk.skipped,
            cursor=[head[-1].get(name) for name in names] if names else chunk.cursor,
        )
        seq = self._spool(job, first, head_digests)
        second = ResultChunk(
            seq=seq,
            attempt=chunk.attempt,
            columns=chunk.columns,
            rows=tail,
            row_count=len(tail),
            total_rows=chunk.total_rows,
            skipped=chunk.skipped,
            cursor=chunk.cursor,
            done=chunk.done,
            truncated=chunk.truncated,
            next_page_token=chunk.next_page_token,
        )
        return self._spool(job, second, tail_digests)

    # --- sending ------------------------------------------------------------------------------

    def _result_target(self, job_id: str) -> str:
        connector = quote(self.config.connector_id)
        return f"{self._base}/api/v1/connectors/{connector}/jobs/{quote(job_id, safe='')}/result"

    def _send_loop(self) -> None:
        backoff = Backoff(self.config.retry_base_s, self.config.retry_cap_s)
        while True:
            if self._grace_over():
                return
            entry = self.spool.peek(timeout=0.2)
            if entry is None:
                if self.stopping.is_set():
                    return
                continue
            status = self.send(entry)
            if status is None or status >= 500 or status == 429:
                delay = backoff.next_delay()
                logger.warning(
                    "chunk not delivered, kept in the spool status=%s retry_in_s=%.1f depth=%d",
                    status,
                    delay,
                    self.spool.depth,
                )
                if self.stopping.is_set():
                    return
                self.stopping.wait(delay)
                continue
            backoff.reset()
            self._verdict(entry, status)

    def _grace_over(self) -> bool:
        if self._stopped_at is None:
            return False
        return time.monotonic() - self._stopped_at > DRAIN_GRACE_S

    def send(self, entry: SpoolEntry) -> int | None:
        """Post one spooled chunk, signed now; its HTTP status, or None without an answer."""
        target = self._result_target(entry.job_id)
        self.bucket.take(len(entry.body), self.stopping)
        headers = self._signed("POST", target, entry.body)
        headers["Content-Type"] = "application/json"
        encoding = str(entry.meta.get("encoding") or "identity")
        if encoding != "identity":
            headers["Content-Encoding"] = encoding
        try:
            status, _headers, _body = self._post.request("POST", target, entry.body, headers)
        except (OSError, http.client.HTTPException) as exc:
            logger.info("posting a chunk failed error=%s", type(exc).__name__)
            return None
        return status

    def _verdict(self, entry: SpoolEntry, status: int) -> None:
        store = self.service.digests
        batch = entry.meta.get("digest_batch")
        job_id = entry.job_id
        if status == 200:
            self.spool.pop(entry)
            self._heartbeat()
            if batch and store is not None:
                store.commit(str(batch))
            self.service.stats.sent(
                rows=int(entry.meta.get("rows") or 0), wire_bytes=len(entry.body), chunks=1
            )
            if entry.meta.get("done"):
                logger.info("job delivered job_id=%s last_seq=%s", job_id, entry.meta.get("seq"))
        elif status == 409:
            self.cancelled.add(job_id)
            dropped = self.spool.drop_job(job_id)
            if store is not None:
                store.discard_prefix(f"{job_id}/")
            logger.warning(
                "the cloud refused the job (409): dropped job_id=%s chunks=%d", job_id, dropped
            )
        else:
            self.spool.pop(entry)
            if batch and store is not None:
                store.discard(str(batch))
            logger.error(
                "the cloud refused a chunk, dropped job_id=%s seq=%s status=%d",
                job_id,
                entry.meta.get("seq"),
                status,
            )
