"""COS-compatible object store: moto's S3 app behind a shim that speaks Tencent COS.

Run as its own process (``python -m local_emulator.stack.cos --port P --data-dir D ...``); the
parent side is :class:`CosServer`. The shim, in front of moto's S3-only WSGI app:

1. verifies COS v5 signatures (the ``Authorization`` header, or the same ``q-*`` fields in the
   query string of a presigned URL, or the policy fields of a browser POST upload) against the
   configured secret id/key and answers 403 with a COS-style XML error otherwise; every request
   must be signed (buckets are private);
2. routes requests to a bucket (see :func:`route_request` for the rule) and rewrites them to
   path-style S3 for moto, translating ``x-cos-*`` headers to ``x-amz-*`` and back;
3. mirrors every object creation/deletion to ``<data-dir>/<bucket>/<key>`` (+ a
   ``.cosmeta.json`` sidecar) before answering, and loads that tree back into moto on start;
4. posts an object-created notification (JSON) to ``--notify-url`` asynchronously, in order;
5. sets ``x-cos-request-id`` on every response.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import queue
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from local_emulator.stack._process import (
    LOOPBACK,
    StackError,
    log_tail,
    open_log,
    python_child_env,
    stop_child,
)

logger = logging.getLogger("local_emulator.stack.cos")

SIGN_FIELDS = frozenset(
    {
        "q-sign-algorithm",
        "q-ak",
        "q-sign-time",
        "q-key-time",
        "q-header-list",
        "q-url-param-list",
        "q-signature",
    }
)
# Query parameters a presigned URL may carry besides the signature itself.
PRESIGN_EXTRA = frozenset({"q-token", "x-cos-security-token"})
COS_DOMAINS = (".myqcloud.com", ".tencentcos.cn")
BUCKET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+$")
MOTO_REGION = "us-east-1"
MOTO_AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential=cos-emulator/20000101/{MOTO_REGION}/s3/aws4_request, "
    "SignedHeaders=host, Signature=verified-by-cos-shim"
)
READY_PREFIX = "cos-ready "
DRAIN_LIMIT = 64 * 1024 * 1024
NOTIFY_TIMEOUT = 3.0
COS_MIN_PART_SIZE = 1024 * 1024

# COS storage classes moto does not know, and the S3 class that behaves alike.
STORAGE_CLASS_TO_S3 = {
    "ARCHIVE": "GLACIER",
    "MAZ_STANDARD": "STANDARD",
    "MAZ_STANDARD_IA": "STANDARD_IA",
    "MAZ_INTELLIGENT_TIERING": "INTELLIGENT_TIERING",
}
STORAGE_CLASS_FROM_S3 = {"GLACIER": "ARCHIVE"}

EVENT_PUT = "cos:ObjectCreated:Put"
EVENT_POST = "cos:ObjectCreated:Post"
EVENT_COPY = "cos:ObjectCreated:Copy"
EVENT_COMPLETE = "cos:ObjectCreated:CompleteMultipartUpload"


# === signatures ================================================================================


def _encode(value: str) -> str:
    return quote(value.encode("utf-8"), safe="-_.~")


def _pairs(items: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((_encode(name).lower(), _encode(value)) for name, value in items)
    return "&".join(f"{name}={value}" for name, value in encoded)


def cos_signature(
    secret_key: str,
    *,
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    key_time: str,
    sign_time: str | None = None,
) -> str:
    """The q-signature of a request (COS XML API v5).

    path is the decoded URI path as signed (``/<key>``); params and headers are the signed
    (name, value) pairs, raw. SignKey = HMAC-SHA1(SecretKey, KeyTime); HttpString =
    method, path, params, headers (each line ends with \\n); StringToSign = "sha1\\n" + SignTime
    + "\\n" + SHA1(HttpString) + "\\n"; Signature = HMAC-SHA1(SignKey, StringToSign), hex.
    """
    http_string = f"{method.lower()}\n{path}\n{_pairs(params)}\n{_pairs(headers)}\n"
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    # SHA-1 is what the COS v5 protocol specifies.
    digest = hashlib.sha1(http_string.encode("utf-8"), usedforsecurity=False).hexdigest()
    string_to_sign = f"sha1\n{sign_time or key_time}\n{digest}\n"
    return hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()


def policy_signature(secret_key: str, *, key_time: str, policy_json: str) -> str:
    """The q-signature of a POST Object policy: HMAC-SHA1(SignKey, SHA1(policy))."""
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    digest = hashlib.sha1(policy_json.encode("utf-8"), usedforsecurity=False).hexdigest()
    return hmac.new(sign_key.encode(), digest.encode(), hashlib.sha1).hexdigest()


class CosRequestError(Exception):
    """A request that must be refused; rendered as a COS XML error."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _parse_time_range(value: str) -> tuple[int, int]:
    start, sep, end = value.partition(";")
    if not sep:
        raise CosRequestError("AccessDenied", "malformed q-key-time / q-sign-time")
    try:
        return int(start), int(end)
    except ValueError as exc:
        raise CosRequestError("AccessDenied", "malformed q-key-time / q-sign-time") from exc


@dataclass(frozen=True)
class CosCredentials:
    """The one key pair the emulated account accepts."""

    secret_id: str
    secret_key: str = field(repr=False)

    def check_window(self, fields: Mapping[str, str], now: float) -> None:
        for name in ("q-key-time", "q-sign-time"):
            if name not in fields:
                continue
            start, end = _parse_time_range(fields[name])
            if now > end:
                raise CosRequestError("AccessDenied", "Request has expired")
            if now < start:
                raise CosRequestError("AccessDenied", "Request signature is not yet valid")

    def check_ak(self, fields: Mapping[str, str]) -> None:
        if fields.get("q-sign-algorithm", "").lower() != "sha1":
            raise CosRequestError("AccessDenied", "q-sign-algorithm must be sha1")
        if not hmac.compare_digest(fields.get("q-ak", ""), self.secret_id):
            raise CosRequestError(
                "InvalidAccessKeyId", "The access key Id format you provided is invalid."
            )

    def verify_request(
        self,
        fields: Mapping[str, str],
        *,
        method: str,
        paths: Iterable[str],
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        hosts: Iterable[str],
        now: float,
    ) -> None:
        """Raise CosRequestError unless fields sign this request (any of the candidate paths)."""
        missing = [name for name in ("q-ak", "q-key-time", "q-signature") if not fields.get(name)]
        if missing:
            raise CosRequestError("AccessDenied", f"authorization lacks {', '.join(missing)}")
        self.check_ak(fields)
        self.check_window(fields, now)
        key_time = fields["q-key-time"]
        sign_time = fields.get("q-sign-time") or key_time
        param_names = [n for n in fields.get("q-url-param-list", "").split(";") if n]
        header_names = [n for n in fields.get("q-header-list", "").split(";") if n]

        query_values: dict[str, str] = {}
        for name, value in query:
            query_values.setdefault(_encode(name).lower(), value)
        params: list[tuple[str, str]] = []
        for name in param_names:
            if name.lower() not in query_values:
                raise CosRequestError(
                    "SignatureDoesNotMatch", f"signed parameter {name} is missing"
                )
            params.append((name.lower(), query_values[name.lower()]))

        host_candidates = list(dict.fromkeys(hosts))
        signed: list[list[tuple[str, str]]] = [[]]
        for name in header_names:
            lname = name.lower()
            if lname == "host":
                signed = [
                    [*prefix, ("host", host)] for prefix in signed for host in host_candidates
                ]
                continue
            if lname not in headers:
                raise CosRequestError("SignatureDoesNotMatch", f"signed header {name} is missing")
            signed = [[*prefix, (lname, headers[lname])] for prefix in signed]

        expected = fields["q-signature"].lower()
        for path, header_set in itertools.product(dict.fromkeys(paths), signed):
            candidate = cos_signature(
                self.secret_key,
                method=method,
                path=path,
                params=params,
                headers=header_set,
                key_time=key_time,
                sign_time=sign_time,
            )
            if hmac.compare_digest(candidate, expected):
                return
        raise CosRequestError(
            "SignatureDoesNotMatch",
            "The Signature you specified does not match what we calculated.",
        )


def parse_authorization(value: str) -> dict[str, str]:
    """The q-* fields of an Authorization header value."""
    fields: dict[str, str] = {}
    for item in value.split("&"):
        name, sep, val = item.partition("=")
        if sep:
            fields[name.strip().lower()] = val.strip()
    return fields


# === routing ===================================================================================


@dataclass(frozen=True)
class Route:
    """Where a request goes: bucket None means the service (ListBuckets)."""

    bucket: str | None
    raw_key: str  # as sent on the wire (percent-encoded), "" for bucket-level requests
    style: str  # "virtual-host", "path", "default-bucket" or "service"
    sign_paths: tuple[str, ...]

    @property
    def key(self) -> str:
        return unquote(self.raw_key)


def _host_label(host: str) -> tuple[str, bool]:
    """(first DNS label, is a COS domain) of a Host header value without port."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    is_cos = name.endswith(COS_DOMAINS)
    return name.split(".", 1)[0], is_cos


def route_request(
    host: str, raw_path: str, buckets: Callable[[], Iterable[str]], default_bucket: str
) -> Route:
    """Pick the bucket and key of a request.

    1. Host ``<bucket>.cos.<region>.myqcloud.com`` (what the SDK sends, also in IP/Port mode):
       that bucket, the whole path is the key. Any other COS domain (``service.cos...``) is the
       service endpoint.
    2. Otherwise (Host is 127.0.0.1, localhost, ...): path style ``/<bucket>/<key>`` when the first
       path segment names an existing bucket;
    3. ``/`` alone: the service endpoint (ListBuckets);
    4. anything else: the key in the configured default bucket. This is where the SDK's
       presigned URLs in IP/Port mode (``http://127.0.0.1:P/<key>?q-sign-...``) land, so presign
       for the default bucket, or for another bucket send its Host header / use path style.
    """
    raw_path = raw_path or "/"
    decoded = unquote(raw_path)
    label, is_cos = _host_label(host)
    if is_cos:
        if BUCKET_NAME.match(label):
            return Route(label, raw_path[1:], "virtual-host", (decoded,))
        return Route(None, "", "service", (decoded,))
    first, _, rest = raw_path[1:].partition("/")
    if first and unquote(first) in set(buckets()):
        bucket = unquote(first)
        key_path = "/" + unquote(rest)
        return Route(bucket, rest, "path", (decoded, key_path))
    if raw_path == "/":
        return Route(None, "", "service", ("/",))
    return Route(default_bucket, raw_path[1:], "default-bucket", (decoded,))


def translate_copy_source(value: str) -> str:
    """COS copy source (``<bucket>.cos.<region>.myqcloud.com/<key>``) to S3's ``<bucket>/<key>``."""
    source = value.strip()
    if "://" in source:
        source = source.split("://", 1)[1]
    source = source.lstrip("/")
    host, _, rest = source.partition("/")
    label, is_cos = _host_label(host)
    bucket = label if is_cos else unquote(host)
    return f"{bucket}/{rest}"


# === persistence ===============================================================================

SIDECAR_SUFFIX = ".cosmeta.json"
HASHED_DIR = ".cos-hashed"
MAX_SEGMENT_BYTES = 200


@dataclass
class StoredObject:
    """An object's bytes and the metadata kept beside them."""

    key: str
    data: bytes
    etag: str  # without quotes
    content_type: str
    metadata: dict[str, str]
    last_modified: str  # ISO 8601, UTC
    storage_class: str = "STANDARD"

    def sidecar(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "etag": self.etag,
            "size": len(self.data),
            "content_type": self.content_type,
            "metadata": self.metadata,
            "last_modified": self.last_modified,
            "storage_class": self.storage_class,
        }


class ObjectMirror:
    """Objects as files: ``<root>/<bucket>/<key>`` plus ``<key>.cosmeta.json``.

    Keys that cannot be a path (empty or dot segments, a trailing slash, over-long segments, a
    key that is also a "directory" of another key) go to ``<root>/<bucket>/.cos-hashed/<sha256>``.
    The sidecar holds the real key, so loading never depends on the file name.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"
        self._lock = threading.Lock()

    def bucket_dir(self, bucket: str) -> Path:
        if not BUCKET_NAME.match(bucket):
            raise ValueError(f"not a COS bucket name: {bucket!r}")
        return self.root / bucket

    def ensure_bucket(self, bucket: str) -> None:
        self.bucket_dir(bucket).mkdir(parents=True, exist_ok=True)

    def remove_bucket(self, bucket: str) -> None:
        with self._lock:
            shutil.rmtree(self.bucket_dir(bucket), ignore_errors=True)

    def buckets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and BUCKET_NAME.match(entry.name)
        )

    def _natural_path(self, bucket: str, key: str) -> Path | None:
        segments = key.split("/")
        for segment in segments:
            if (
                segment in ("", ".", "..")
                or "\0" in segment
                or segment.endswith(SIDECAR_SUFFIX)
                or len(segment.encode()) > MAX_SEGMENT_BYTES
            ):
                return None
        if segments[0] == HASHED_DIR:
            return None
        return self.bucket_dir(bucket).joinpath(*segments)

    def _hashed_path(self, bucket: str, key: str) -> Path:
        return self.bucket_dir(bucket) / HASHED_DIR / hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + SIDECAR_SUFFIX)

    def _usable(self, bucket: str, path: Path) -> bool:
        base = self.bucket_dir(bucket)
        for parent in path.relative_to(base).parents:
            candidate = base / parent
            if candidate.exists() and not candidate.is_dir():
                return False
        return not path.is_dir() and not self._sidecar(path).is_dir()

    def write(self, bucket: str, obj: StoredObject) -> Path:
        """Store obj atomically (data, then sidecar) and drop any other copy of the key."""
        with self._lock:
            natural = self._natural_path(bucket, obj.key)
            hashed = self._hashed_path(bucket, obj.key)
            target = natural if natural is not None and self._usable(bucket, natural) else hashed
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
            data_tmp = self._tmp / secrets.token_hex(8)
            meta_tmp = self._tmp / secrets.token_hex(8)
            data_tmp.write_bytes(obj.data)
            meta_tmp.write_text(json.dumps(obj.sidecar(), ensure_ascii=False, sort_keys=True))
            os.replace(data_tmp, target)
            os.replace(meta_tmp, self._sidecar(target))
            for other in (natural, hashed):
                if other is not None and other != target:
                    self._remove_copy(bucket, other)
            return target

    def remove(self, bucket: str, key: str) -> None:
        with self._lock:
            natural = self._natural_path(bucket, key)
            for path in (natural, self._hashed_path(bucket, key)):
                if path is not None:
                    self._remove_copy(bucket, path)

    def _remove_copy(self, bucket: str, path: Path) -> None:
        removed = False
        for item in (path, self._sidecar(path)):
            if item.is_file():
                item.unlink()
                removed = True
        if not removed:
            return
        base = self.bucket_dir(bucket)
        parent = path.parent
        while parent != base and base in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def objects(self, bucket: str) -> Iterator[StoredObject]:
        """Every complete object stored for bucket (incomplete leftovers are skipped)."""
        base = self.bucket_dir(bucket)
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if not name.endswith(SIDECAR_SUFFIX):
                    continue
                sidecar = Path(dirpath) / name
                data_path = sidecar.with_name(name[: -len(SIDECAR_SUFFIX)])
                try:
                    meta = json.loads(sidecar.read_text())
                    data = data_path.read_bytes()
                except (OSError, ValueError) as exc:
                    logger.warning("skipping stored object path=%s error=%s", sidecar, exc)
                    continue
                etag = str(meta.get("etag") or "")
                if meta.get("size") != len(data) or not etag:
                    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
                yield StoredObject(
                    key=str(meta["key"]),
                    data=data,
                    etag=etag,
                    content_type=str(meta.get("content_type") or "application/octet-stream"),
                    metadata={str(k): str(v) for k, v in (meta.get("metadata") or {}).items()},
                    last_modified=str(meta.get("last_modified") or ""),
                    storage_class=str(meta.get("storage_class") or "STANDARD"),
                )


class MotoStore:
    """The few operations the shim needs on moto's in-process S3 backend."""

    def __init__(self) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.exceptions import MissingBucket
        from moto.s3.models import s3_backends

        self._backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        self._missing_bucket = MissingBucket

    def bucket_names(self) -> list[str]:
        return list(self._backend.buckets)

    def create_bucket(self, name: str) -> None:
        if name not in self._backend.buckets:
            self._backend.create_bucket(name, MOTO_REGION)

    def snapshot(self, bucket: str, key: str) -> StoredObject | None:
        try:
            obj = self._backend.get_object(bucket, key)
        except self._missing_bucket:
            return None
        if obj is None:
            return None
        metadata = {str(k): str(v) for k, v in obj.metadata.items()}
        last_modified = obj.last_modified
        return StoredObject(
            key=key,
            data=obj.value,
            etag=obj.etag.strip('"'),
            content_type=metadata.get("Content-Type", "binary/octet-stream"),
            metadata=metadata,
            last_modified=last_modified.isoformat() if last_modified else "",
            storage_class=obj.storage_class or "STANDARD",
        )

    def restore(self, bucket: str, obj: StoredObject) -> None:
        new_key = self._backend.put_object(
            bucket,
            obj.key,
            obj.data,
            storage=obj.storage_class,
            etag=obj.etag,
            disable_notification=True,
        )
        new_key.set_metadata(dict(obj.metadata))
        if obj.last_modified:
            with contextlib.suppress(ValueError):
                new_key.last_modified = dt.datetime.fromisoformat(obj.last_modified)


# === notifications =============================================================================


class Notifier:
    """Delivers object-created events to one URL from a background thread, in order.

    Delivery is at most once: a failure is logged on one line and the event dropped (the object
    is already stored).
    """

    def __init__(self, url: str | None, timeout: float = NOTIFY_TIMEOUT) -> None:
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the notify URL must be http(s)")
        self.url = url
        self.timeout = timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        if url:
            self._thread = threading.Thread(target=self._run, name="cos-notify", daemon=True)
            self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        if not self.url:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            logger.warning("notify queue full, event dropped key=%s", event.get("key"))

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        assert self.url is not None
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read()
        except (OSError, urllib.error.URLError) as exc:
            logger.warning(
                "notify failed event=%s key=%s error=%s",
                event.get("event_name"),
                event.get("key"),
                exc,
            )


# === the WSGI shim =============================================================================

StartResponse = Callable[..., Any]


def _wsgi_str(text: str) -> str:
    """A str as WSGI carries it in environ (UTF-8 bytes seen as latin-1)."""
    return text.encode("utf-8").decode("latin-1")


def _from_wsgi(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", errors="replace")


def _request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers[name[5:].replace("_", "-").lower()] = _from_wsgi(str(value))
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = str(environ[name])
    return headers


def _raw_uri(environ: Mapping[str, Any]) -> tuple[str, str]:
    """(raw path, raw query) as the client sent them."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if raw:
        if "://" in raw.split("?", 1)[0]:
            parts = urlsplit(raw)
            return parts.path or "/", parts.query
        path, _, query = raw.partition("?")
        return path or "/", query
    path = quote(_from_wsgi(str(environ.get("PATH_INFO", "/"))), safe="/-_.~!$&'()*+,;=:@")
    return path or "/", str(environ.get("QUERY_STRING", ""))


def _strip_signature_params(raw_query: str) -> str:
    kept = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name = unquote(item.partition("=")[0]).lower()
        if name in SIGN_FIELDS or name in PRESIGN_EXTRA:
            continue
        kept.append(item)
    return "&".join(kept)


def _xml_text(root: ElementTree.Element, tag: str) -> str:
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == tag:
            return element.text or ""
    return ""


class RequestIds:
    """COS-looking request ids: base64 of "<hex time>_<random>_<counter>"."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._prefix = secrets.token_hex(4)

    def next(self) -> str:
        raw = f"{int(time.time()):x}_{self._prefix}_{next(self._counter)}"
        return base64.b64encode(raw.encode()).decode()


@dataclass
class _Captured:
    status: str = "500 Internal Server Error"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status = status
        self.headers = list(headers)


class CosShim:
    """WSGI app: COS auth, routing, persistence and notifications in front of moto's S3 app."""

    def __init__(
        self,
        moto_app: Callable[..., Iterable[bytes]],
        store: MotoStore,
        mirror: ObjectMirror,
        notifier: Notifier,
        credentials: CosCredentials,
        *,
        region: str,
        default_bucket: str,
        port: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.moto_app = moto_app
        self.store = store
        self.mirror = mirror
        self.notifier = notifier
        self.credentials = credentials
        self.region = region
        self.default_bucket = default_bucket
        self.port = port
        self.clock = clock
        self.request_ids = RequestIds()
        from werkzeug.wsgi import LimitedStream

        self._limited_stream = LimitedStream

    # --- start-up ----------------------------------------------------------------------------

    def load(self) -> int:
        """Create the default bucket and load the mirrored buckets and objects into moto."""
        count = 0
        for bucket in dict.fromkeys([self.default_bucket, *self.mirror.buckets()]):
            self.store.create_bucket(bucket)
            self.mirror.ensure_bucket(bucket)
            for obj in self.mirror.objects(bucket):
                self.store.restore(bucket, obj)
                count += 1
        return count

    # --- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        request_id = self.request_ids.next()
        length = str(environ.get("CONTENT_LENGTH") or "")
        if length.isdigit():
            # Reads past the body must end, not block on the socket (the shim may drain it).
            environ["wsgi.input"] = self._limited_stream(environ["wsgi.input"], int(length))
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw_path, raw_query = _raw_uri(environ)
        host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
        route = route_request(host, raw_path, self.store.bucket_names, self.default_bucket)
        status = 500
        try:
            status, headers, body = self._handle(environ, method, route, raw_query, request_id)
        except CosRequestError as exc:
            self._drain(environ)
            status, headers, body = self._error(exc, route, request_id, method)
        except Exception:
            # Answer like COS would (500 InternalError) rather than werkzeug's HTML page.
            logger.exception("request failed request_id=%s", request_id)
            self._drain(environ)
            error = CosRequestError("InternalError", "We encountered an internal error.", 500)
            status, headers, body = self._error(error, route, request_id, method)
        finally:
            logger.info(
                "request method=%s bucket=%s key=%s status=%s request_id=%s ms=%d",
                method,
                route.bucket or "-",
                route.key or "-",
                status,
                request_id,
                (time.monotonic() - started) * 1000,
            )
        start_response(f"{status} {_reason(status)}", headers)
        return body

    def _handle(
        self,
        environ: dict[str, Any],
        method: str,
        route: Route,
        raw_query: str,
        request_id: str,
    ) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        query = parse_qsl(raw_query, keep_blank_values=True)
        headers = _request_headers(environ)
        is_form_post = (
            method == "POST"
            and not route.raw_key
            and headers.get("content-type", "").lower().startswith("multipart/form-data")
        )
        if is_form_post:
            # A form posted to the bare endpoint (no bucket Host) goes to the default bucket.
            bucket = route.bucket or self.default_bucket
            return self._post_object(environ, bucket, request_id)
        self._authenticate(environ, method, route, query, headers)
        creates_bucket = method == "PUT" and not route.raw_key
        if (
            route.bucket is not None
            and not creates_bucket
            and route.bucket not in self.store.bucket_names()
        ):
            raise CosRequestError("NoSuchBucket", "The specified bucket does not exist.", 404)
        body_bytes: bytes | None = None
        if method == "POST" and "delete" in dict(query):
            body_bytes = self._read_body(environ)
        moto_environ = self._moto_environ(environ, route, raw_query, body_bytes)
        captured = _Captured()
        chunks = self.moto_app(moto_environ, captured)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if captured.code < 300:
            self._after_success(
                environ, method, route, dict(query), headers, body_bytes, request_id
            )
        if captured.code >= 400:
            moto_error = _parse_error(body)
            if moto_error is not None:
                return self._error(
                    CosRequestError(*moto_error, status=captured.code), route, request_id, method
                )
        elif method == "POST" and route.bucket and b"amazonaws.com" in body:
            # CompleteMultipartUploadResult's Location names the S3 host.
            body = body.replace(
                f"{route.bucket}.s3.amazonaws.com".encode(),
                f"{route.bucket}.cos.{self.region}.myqcloud.com".encode(),
            )
            captured.headers = [
                (n, str(len(body)) if n.lower() == "content-length" else v)
                for n, v in captured.headers
            ]
        out_headers = self._response_headers(captured.headers, request_id)
        return captured.code, out_headers, [body]

    # --- auth --------------------------------------------------------------------------------

    def _authenticate(
        self,
        environ: Mapping[str, Any],
        method: str,
        route: Route,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
    ) -> None:
        authorization = headers.get("authorization", "")
        if authorization:
            fields = parse_authorization(authorization)
        else:
            fields = {name.lower(): value for name, value in query if name.lower() in SIGN_FIELDS}
        if not fields.get("q-signature"):
            raise CosRequestError("AccessDenied", "Access Denied.")
        host = headers.get("host", "")
        host_candidates = [host, host.rsplit(":", 1)[0]] if ":" in host else [host]
        self.credentials.verify_request(
            fields,
            method=method,
            paths=route.sign_paths,
            query=[(n, v) for n, v in query if n.lower() not in SIGN_FIELDS],
            headers=headers,
            hosts=host_candidates,
            now=self.clock(),
        )

    # --- moto adaptation ---------------------------------------------------------------------

    def _moto_environ(
        self,
        environ: dict[str, Any],
        route: Route,
        raw_query: str,
        body: bytes | None,
    ) -> dict[str, Any]:
        env = dict(environ)
        if route.bucket is None:
            raw_path, path = "/", "/"
        else:
            raw_path = (
                f"/{quote(route.bucket)}/{route.raw_key}" if route.raw_key else f"/{route.bucket}"
            )
            path = f"/{route.bucket}/{route.key}" if route.raw_key else f"/{route.bucket}"
        query = _strip_signature_params(raw_query)
        env["PATH_INFO"] = _wsgi_str(path)
        env["RAW_URI"] = env["REQUEST_URI"] = raw_path + (f"?{query}" if query else "")
        env["QUERY_STRING"] = query
        env["HTTP_HOST"] = f"{LOOPBACK}:{self.port}"
        # moto cannot parse COS's Authorization, but serves private objects only to requests
        # that carry one: give it a fixed AWS4-shaped stand-in (moto does not verify it).
        env["HTTP_AUTHORIZATION"] = MOTO_AUTHORIZATION
        for name in [n for n in env if n.startswith("HTTP_X_COS_")]:
            value = env.pop(name)
            suffix = name[len("HTTP_X_COS_") :]
            if suffix == "SECURITY_TOKEN":
                continue
            if suffix == "COPY_SOURCE":
                value = translate_copy_source(_from_wsgi(str(value)))
                value = _wsgi_str(value)
            elif suffix == "STORAGE_CLASS":
                value = STORAGE_CLASS_TO_S3.get(str(value).upper(), str(value).upper())
            env[f"HTTP_X_AMZ_{suffix}"] = value
        if body is not None:
            env["wsgi.input"] = io.BytesIO(body)
            env["CONTENT_LENGTH"] = str(len(body))
        content_type = str(env.get("CONTENT_TYPE") or "").lower()
        if str(env.get("REQUEST_METHOD", "")).upper() == "PUT" and content_type.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            # COS stores any PUT body as bytes; moto's werkzeug would parse a form-typed body
            # (urllib's default for data) into fields and store an empty object.
            env["CONTENT_TYPE"] = "application/octet-stream"
        return env

    def _response_headers(
        self, headers: Iterable[tuple[str, str]], request_id: str
    ) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value in headers:
            lname = name.lower()
            if lname in ("x-amz-request-id", "x-amz-id-2", "x-amzn-requestid", "server"):
                continue
            if lname.startswith("x-amz-"):
                name = "x-cos-" + lname[len("x-amz-") :]
                if lname == "x-amz-storage-class":
                    value = STORAGE_CLASS_FROM_S3.get(value, value)
            elif lname == "etag":
                name = "ETag"
            elif not lname.startswith("x-"):
                name = "-".join(part.capitalize() for part in lname.split("-"))
            out.append((name, value))
        out.append(("x-cos-request-id", request_id))
        return out

    # --- persistence and events --------------------------------------------------------------

    def _after_success(
        self,
        environ: Mapping[str, Any],
        method: str,
        route: Route,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | None,
        request_id: str,
    ) -> None:
        bucket = route.bucket
        if bucket is None:
            return
        params = {n: v for n, v in params.items() if n.lower() not in SIGN_FIELDS}
        if not route.raw_key:
            if method == "PUT" and not params:
                self.mirror.ensure_bucket(bucket)
            elif method == "DELETE" and not params:
                self.mirror.remove_bucket(bucket)
            elif method == "POST" and "delete" in params and body is not None:
                for key in _delete_keys(body):
                    self._sync(bucket, key)
            return
        key = route.key
        if method in ("GET", "HEAD", "OPTIONS"):
            return
        if method == "POST" and "uploads" in params:
            return
        if "uploadId" in params and method != "POST":
            return
        stored = self._sync(bucket, key)
        if stored is None:
            return
        event = None
        if method == "PUT" and not params:
            event = EVENT_COPY if "x-cos-copy-source" in headers else EVENT_PUT
        elif method == "POST" and "uploadId" in params:
            event = EVENT_COMPLETE
        if event:
            self._notify(event, bucket, stored, environ, request_id)

    def _sync(self, bucket: str, key: str) -> StoredObject | None:
        """Make the mirror match moto for one key; the stored object, or None if it is gone."""
        obj = self.store.snapshot(bucket, key)
        if obj is None:
            self.mirror.remove(bucket, key)
        else:
            self.mirror.write(bucket, obj)
        return obj

    def _notify(
        self,
        event_name: str,
        bucket: str,
        obj: StoredObject,
        environ: Mapping[str, Any],
        request_id: str,
    ) -> None:
        self.notifier.publish(
            {
                "event_name": event_name,
                "bucket": bucket,
                "key": obj.key,
                "size": len(obj.data),
                "etag": obj.etag,
                "source_ip": str(environ.get("REMOTE_ADDR", "")),
                "request_id": request_id,
            }
        )

    # --- POST Object (browser form upload) ----------------------------------------------------

    def _post_object(
        self, environ: dict[str, Any], bucket: str, request_id: str
    ) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        from werkzeug.formparser import parse_form_data

        body = self._read_body(environ)
        form_env = dict(environ)
        form_env["wsgi.input"] = io.BytesIO(body)
        form_env["CONTENT_LENGTH"] = str(len(body))
        _stream, form, files = parse_form_data(form_env)
        fields = {name.lower(): value for name, value in form.items()}
        upload = files.get("file")
        if upload is None:
            raise CosRequestError("InvalidArgument", "POST Object needs a file field", 400)
        data = upload.read()
        raw_key = fields.get("key", "")
        if not raw_key:
            raise CosRequestError("InvalidArgument", "POST Object needs a key field", 400)
        self._check_policy(fields, bucket, len(data))
        key = raw_key.replace("${filename}", upload.filename or "")
        if bucket not in self.store.bucket_names():
            raise CosRequestError("NoSuchBucket", "The specified bucket does not exist.", 404)

        put_env = {
            name: value
            for name, value in environ.items()
            if not name.startswith("HTTP_") and name not in ("CONTENT_TYPE", "CONTENT_LENGTH")
        }
        put_env.update(
            {
                "REQUEST_METHOD": "PUT",
                "PATH_INFO": _wsgi_str(f"/{bucket}/{key}"),
                "RAW_URI": f"/{bucket}/{quote(key.encode(), safe='/-_.~')}",
                "QUERY_STRING": "",
                "HTTP_HOST": f"{LOOPBACK}:{self.port}",
                "HTTP_AUTHORIZATION": MOTO_AUTHORIZATION,
                "CONTENT_LENGTH": str(len(data)),
                "CONTENT_TYPE": fields.get("content-type", "application/octet-stream"),
                "wsgi.input": io.BytesIO(data),
            }
        )
        put_env["REQUEST_URI"] = put_env["RAW_URI"]
        for name, value in fields.items():
            if name.startswith("x-cos-meta-"):
                put_env["HTTP_X_AMZ_META_" + name[11:].upper().replace("-", "_")] = _wsgi_str(value)
            elif name in ("cache-control", "content-disposition", "content-encoding", "expires"):
                put_env["HTTP_" + name.upper().replace("-", "_")] = _wsgi_str(value)
        captured = _Captured()
        moto_body = b"".join(self.moto_app(put_env, captured))
        if captured.code >= 300:
            moto_error = _parse_error(moto_body) or ("InternalError", "upload failed")
            raise CosRequestError(*moto_error, status=captured.code)
        stored = self._sync(bucket, key)
        if stored is not None:
            self._notify(EVENT_POST, bucket, stored, environ, request_id)
        etag = f'"{stored.etag}"' if stored is not None else ""
        location = f"http://{bucket}.cos.{self.region}.myqcloud.com/{quote(key.encode())}"
        redirect = fields.get("success_action_redirect")
        if redirect:
            joiner = "&" if urlsplit(redirect).query else "?"
            target = redirect + joiner + urlencode({"bucket": bucket, "key": key, "etag": etag})
            headers = [("ETag", etag), ("Location", target)]
            return 303, self._response_headers(headers, request_id), [b""]
        headers = [("ETag", etag), ("Location", location)]
        wanted = fields.get("success_action_status", "204")
        status = int(wanted) if wanted in ("200", "201", "204") else 204
        if status == 201:
            xml = (
                "<?xml version='1.0' encoding='utf-8' ?>\n<PostResponse>"
                f"<Location>{escape(location)}</Location><Bucket>{escape(bucket)}</Bucket>"
                f"<Key>{escape(key)}</Key><ETag>{escape(etag)}</ETag></PostResponse>"
            ).encode()
            headers.append(("Content-Type", "application/xml"))
            return status, self._response_headers(headers, request_id), [xml]
        return status, self._response_headers(headers, request_id), [b""]

    def _check_policy(self, fields: Mapping[str, str], bucket: str, size: int) -> None:
        """Verify the policy signature, its expiration and its conditions.

        Supported conditions: {"field": value} (exact), ["eq"|"starts-with", "$field", value]
        and ["content-length-range", min, max]; any other condition is refused.
        """
        encoded = fields.get("policy", "")
        if not encoded or not fields.get("q-signature"):
            raise CosRequestError("AccessDenied", "Access Denied.")
        self.credentials.check_ak(fields)
        now = self.clock()
        self.credentials.check_window({"q-key-time": fields.get("q-key-time", "")}, now)
        try:
            policy_json = base64.b64decode(encoded).decode("utf-8")
            policy = json.loads(policy_json)
            if not isinstance(policy, dict):
                raise ValueError("policy is not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CosRequestError(
                "InvalidPolicyDocument", "policy is not base64 JSON", 400
            ) from exc
        expected = policy_signature(
            self.credentials.secret_key, key_time=fields["q-key-time"], policy_json=policy_json
        )
        if not hmac.compare_digest(expected, fields["q-signature"].lower()):
            raise CosRequestError(
                "SignatureDoesNotMatch",
                "The Signature you specified does not match what we calculated.",
            )
        expiration = str(policy.get("expiration", ""))
        try:
            expires = dt.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CosRequestError("InvalidPolicyDocument", "bad policy expiration", 400) from exc
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.timezone.utc)
        if expires.timestamp() < now:
            raise CosRequestError("AccessDenied", "Invalid according to Policy: Policy expired.")
        values = {**fields, "bucket": bucket}
        values.setdefault("q-sign-time", fields.get("q-key-time", ""))
        for condition in policy.get("conditions", []):
            if not _condition_holds(condition, values, size):
                raise CosRequestError(
                    "AccessDenied", f"Invalid according to Policy: condition {condition!r} failed"
                )

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _read_body(environ: Mapping[str, Any]) -> bytes:
        stream = environ["wsgi.input"]
        length = str(environ.get("CONTENT_LENGTH") or "")
        if length.isdigit():
            return bytes(stream.read(int(length)))
        return bytes(stream.read())

    @staticmethod
    def _drain(environ: Mapping[str, Any]) -> None:
        """Consume an unread request body so a keep-alive connection stays usable."""
        length = str(environ.get("CONTENT_LENGTH") or "")
        if not length.isdigit() or int(length) > DRAIN_LIMIT:
            return
        remaining = int(length)
        stream = environ["wsgi.input"]
        with contextlib.suppress(OSError, ValueError):
            while remaining > 0:
                chunk = stream.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)

    def _error(
        self, exc: CosRequestError, route: Route, request_id: str, method: str
    ) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        resource = (
            f"{route.bucket}.cos.{self.region}.myqcloud.com/{route.key}" if route.bucket else "/"
        )
        xml = (
            "<?xml version='1.0' encoding='utf-8' ?>\n<Error>\n"
            f"\t<Code>{escape(exc.code)}</Code>\n"
            f"\t<Message>{escape(exc.message)}</Message>\n"
            f"\t<Resource>{escape(resource)}</Resource>\n"
            f"\t<RequestId>{escape(request_id)}</RequestId>\n"
            f"\t<TraceId>{escape(request_id)}</TraceId>\n"
            "</Error>"
        ).encode()
        body = b"" if method == "HEAD" else xml
        headers = [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-cos-request-id", request_id),
        ]
        return exc.status, headers, [body]


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _parse_error(body: bytes) -> tuple[str, str] | None:
    """(Code, Message) of an S3 error document, None if body is not one."""
    if b"<Error" not in body[:200]:
        return None
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - moto's own output
    except ElementTree.ParseError:
        return None
    code = _xml_text(root, "Code")
    if not code:
        return None
    return code, _xml_text(root, "Message") or code


def _delete_keys(body: bytes) -> list[str]:
    """The keys named in a DeleteObjects (POST ?delete) request body."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - loopback client, bounded body
    except ElementTree.ParseError:
        return []
    keys = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Object":
            key = _xml_text(element, "Key")
            if key:
                keys.append(key)
    return keys


def _condition_holds(condition: Any, values: Mapping[str, str], size: int) -> bool:
    if isinstance(condition, dict):
        return all(
            values.get(str(name).lower()) == str(expected) for name, expected in condition.items()
        )
    if isinstance(condition, list) and len(condition) == 3:
        operator = str(condition[0]).lower()
        if operator == "content-length-range":
            try:
                return int(condition[1]) <= size <= int(condition[2])
            except (TypeError, ValueError):
                return False
        name = str(condition[1]).lower().lstrip("$")
        actual = values.get(name, "")
        if operator == "eq":
            return actual == str(condition[2])
        if operator == "starts-with":
            return actual.startswith(str(condition[2]))
    return False


# === the child process =========================================================================


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="COS-compatible object store on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="object mirror root")
    parser.add_argument("--secret-id", required=True)
    parser.add_argument("--secret-key-file", type=Path, required=True)
    parser.add_argument("--region", default="ap-guangzhou")
    parser.add_argument("--bucket", default="hybrid-local-1250000000")
    parser.add_argument("--notify-url", default=None)
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process dies")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def build_app(args: argparse.Namespace) -> CosShim:
    """The shim around a fresh moto S3 app, with the mirrored objects loaded."""
    from moto.moto_server.werkzeug_app import create_backend_app

    secret_key = args.secret_key_file.read_text().strip()
    if not secret_key:
        raise SystemExit("empty secret key file")
    shim = CosShim(
        create_backend_app("s3"),
        MotoStore(),
        ObjectMirror(args.data_dir),
        Notifier(args.notify_url),
        CosCredentials(args.secret_id, secret_key),
        region=args.region,
        default_bucket=args.bucket,
        port=args.port,
    )
    count = shim.load()
    logger.info("cos objects loaded count=%d dir=%s", count, args.data_dir)
    return shim


def _watch_parent(parent_pid: int, on_exit: Callable[[], None]) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            logger.warning("parent process gone, shutting down")
            on_exit()
            return


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # COS accepts 1 MB multipart parts (S3: 5 MB); moto reads this when first imported.
    os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", str(COS_MIN_PART_SIZE))
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        """Access lines come from the shim (without query strings, which hold signatures)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return

        def version_string(self) -> str:
            return "tencent-cos"

    shim = build_app(args)
    server = ThreadedWSGIServer(LOOPBACK, args.port, shim, handler=QuietHandler)
    # A request stuck on a client must not keep the process alive at shutdown.
    server.block_on_close = False

    def shutdown() -> None:
        threading.Thread(target=server.shutdown, name="cos-shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, lambda _sig, _frame: shutdown())
    signal.signal(signal.SIGINT, lambda _sig, _frame: shutdown())
    if args.parent_pid:
        threading.Thread(
            target=_watch_parent, args=(args.parent_pid, shutdown), daemon=True
        ).start()
    sys.stdout.write(f"{READY_PREFIX}{args.port}\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    logger.info("cos listening port=%d bucket=%s", args.port, args.bucket)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        shim.notifier.close()
        logger.info("cos stopped")
    return 0


# === the parent side ===========================================================================


class CosServer:
    """Runs the COS emulator as a child process (``python -m local_emulator.stack.cos``)."""

    START_TIMEOUT = 30.0

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        secret_id: str,
        secret_key_file: Path,
        region: str,
        bucket: str,
        notify_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.objects_dir = data_dir / "cos"
        self.log_path = data_dir / "logs" / "cos.log"
        self.port = port
        self.secret_id = secret_id
        self.secret_key_file = secret_key_file
        self.region = region
        self.bucket = bucket
        self.notify_url = notify_url
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "local_emulator.stack.cos",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.objects_dir),
            "--secret-id",
            self.secret_id,
            "--secret-key-file",
            str(self.secret_key_file),
            "--region",
            self.region,
            "--bucket",
            self.bucket,
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.notify_url:
            command += ["--notify-url", self.notify_url]
        env = python_child_env()
        log_fd = open_log(self.log_path)
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(log_fd)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_child(proc, signal.SIGTERM, timeout=10.0)
        if proc.stdout is not None:
            proc.stdout.close()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        deadline = time.monotonic() + self.START_TIMEOUT
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StackError(f"cos emulator not ready after {self.START_TIMEOUT:.0f}s")
                if not selector.select(timeout=min(remaining, 0.5)):
                    if self._proc.poll() is not None:
                        break
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
        line = buffer.decode(errors="replace").strip()
        if not line.startswith(READY_PREFIX):
            raise StackError(f"cos emulator failed to start:\n{log_tail(self.log_path)}")


if __name__ == "__main__":
    raise SystemExit(main())
