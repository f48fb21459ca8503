"""Tencent COS adapter (cos-python-sdk-v5) for the ObjectStore port.

In the cloud the SDK derives ``https://<bucket>.cos.<region>.myqcloud.com`` itself. With an
endpoint URL (the local emulator only) it connects to that address instead (`IP`/`Port`/`Scheme`),
still sending the bucket's COS domain as the Host header; presigned URLs then look like
``http://127.0.0.1:<port>/<key>?q-sign-algorithm=...`` and the emulator routes them into its bucket.
SDK exceptions never leave this module; error messages carry the operation, key, HTTP status,
COS error code and request id, never credentials.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn
from urllib.parse import urlsplit

from hybrid.storage.port import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    from hybrid.config import CosSettings

TIMEOUT_SECONDS = 10
RETRIES = 1
STREAM_BUFFER_BYTES = 256 * 1024
META_PREFIX = "x-cos-meta-"
_META_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchResource"})


class CosObjectStore:
    def __init__(
        self,
        *,
        region: str,
        bucket: str,
        secret_id: str,
        secret_key: str,
        token: str | None = None,
        endpoint_url: str | None = None,
        timeout: int = TIMEOUT_SECONDS,
        retries: int = RETRIES,
    ) -> None:
        from qcloud_cos import CosConfig, CosS3Client

        options: dict[str, Any] = {
            "Region": region,
            "SecretId": secret_id,
            "SecretKey": secret_key,
            "Token": token,
            "Timeout": timeout,
            "Scheme": "https",
        }
        if endpoint_url:
            parts = urlsplit(endpoint_url)
            if not parts.hostname:
                raise StorageError("cos endpoint url has no host")
            options.update(Scheme=parts.scheme or "http", IP=parts.hostname, Port=parts.port)
        # The SDK logs every missing key on HEAD as a warning and each failure as an error; this
        # adapter turns them into exceptions, which callers log with context.
        logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)
        with _cos_errors("configure", ""):
            self._client = CosS3Client(CosConfig(**options), retry=retries)
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: CosSettings) -> CosObjectStore:
        return cls(
            region=settings.cos_region,
            bucket=settings.cos_bucket,
            secret_id=settings.cos_secret_id.get_secret_value(),
            secret_key=settings.cos_secret_key.get_secret_value(),
            endpoint_url=settings.cos_endpoint_url,
        )

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        headers: dict[str, Any] = {"ContentType": content_type}
        if metadata:
            headers["Metadata"] = _metadata_headers(metadata)
        with _cos_errors("put", key):
            response = self._client.put_object(
                Bucket=self.bucket, Body=bytes(data), Key=key, EnableMD5=True, **headers
            )
        return _unquote(_header(response, "ETag"))

    def get_bytes(self, key: str) -> bytes:
        with self.open_stream(key) as stream:
            return stream.read()

    def open_stream(self, key: str) -> BinaryIO:
        with _cos_errors("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        raw = _BodyReader(response["Body"], key)
        return io.BufferedReader(raw, buffer_size=STREAM_BUFFER_BYTES)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with _cos_errors("head", key):
                headers = self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        metadata = {
            name.lower()[len(META_PREFIX) :]: str(value)
            for name, value in headers.items()
            if name.lower().startswith(META_PREFIX)
        }
        return ObjectInfo(
            key=key,
            size=int(_header(headers, "Content-Length") or 0),
            etag=_unquote(_header(headers, "ETag")),
            content_type=_header(headers, "Content-Type"),
            metadata=metadata,
        )

    def delete(self, key: str) -> None:
        with _cos_errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def presign_put(self, key: str, *, expires_in: int, content_type: str | None = None) -> str:
        signed_headers = {"Content-Type": content_type} if content_type else {}
        return self._presign("PUT", key, expires_in, signed_headers)

    def presign_get(self, key: str, *, expires_in: int) -> str:
        return self._presign("GET", key, expires_in, {})

    def _presign(self, method: str, key: str, expires_in: int, headers: dict[str, str]) -> str:
        if expires_in <= 0:
            raise StorageError("presigned url lifetime must be positive")
        with _cos_errors(f"presign {method.lower()}", key):
            url = self._client.get_presigned_url(
                Bucket=self.bucket, Key=key, Method=method, Expired=expires_in, Headers=headers
            )
        return str(url)


class _BodyReader(io.RawIOBase):
    """The HTTP body of a GET, read in bounded chunks as the caller asks."""

    def __init__(self, body: Any, key: str) -> None:
        super().__init__()
        self._raw = body.get_raw_stream()
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        import requests
        import urllib3

        view = memoryview(buffer).cast("B")
        try:
            chunk = self._raw.read(len(view), decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
            raise StorageUnavailableError(f"cos read interrupted: key={self._key}") from None
        count = len(chunk)
        view[:count] = chunk
        return count

    def close(self) -> None:
        if not self.closed:
            # As requests.Response.close(): drop the connection unless the body was read in full.
            self._raw.close()
            release = getattr(self._raw, "release_conn", None)
            if release is not None:
                release()
        super().close()


@contextmanager
def _cos_errors(operation: str, key: str) -> Iterator[None]:
    from qcloud_cos.cos_exception import CosClientError, CosServiceError

    try:
        yield
    except CosServiceError as exc:
        _raise_service_error(operation, key, exc)
    except CosClientError as exc:
        import requests

        if isinstance(exc.__context__, requests.RequestException):
            raise StorageUnavailableError(
                f"cos {operation} failed: key={key}: {type(exc.__context__).__name__}"
            ) from None
        raise StorageError(f"cos {operation} rejected: key={key}: invalid request") from None
    except OSError:
        raise StorageUnavailableError(f"cos {operation} failed: key={key}: bad response") from None


def _raise_service_error(operation: str, key: str, exc: Any) -> NoReturn:
    status = int(exc.get_status_code() or 0)
    digest = exc.get_digest_msg()
    fields = digest if isinstance(digest, Mapping) else {}
    code = str(fields.get("code") or "Unknown")
    request_id = str(fields.get("requestid") or "-")
    message = (
        f"cos {operation} failed: key={key} status={status} code={code} request_id={request_id}"
    )
    if status == 404 and (code in _NOT_FOUND_CODES or operation == "head"):
        raise ObjectNotFoundError(message) from None
    if status >= 500 or status in (408, 429):
        raise StorageUnavailableError(message) from None
    raise StorageError(message) from None


def _metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in metadata.items():
        if not _META_NAME.match(name) or not str(value).isascii():
            raise StorageError(
                "object metadata needs names of letters, digits, '-' and '_', and ASCII values"
            )
        headers[f"{META_PREFIX}{name.lower()}"] = str(value)
    return headers


def _header(headers: Mapping[str, Any], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return ""


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')
