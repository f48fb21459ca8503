"""Connection details of the stack's PostgreSQL, Redis and COS, as handed to functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_BUCKET = "hybrid-local-1250000000"
DATABASE_NAME = "hybrid"

COS_ENV_NAMES = (
    "COS_REGION",
    "COS_BUCKET",
    "COS_SECRET_ID",
    "COS_SECRET_KEY",
    "COS_ENDPOINT_URL",
)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class CosEndpoint:
    """A COS-compatible endpoint; the bucket is the full COS name "<short>-<appid>"."""

    scheme: str
    host: str
    port: int
    region: str = DEFAULT_REGION
    bucket: str = DEFAULT_BUCKET
    secret_id: str = ""
    secret_key: str = field(default="", repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def appid(self) -> str:
        """The APPID suffix of the bucket name (empty if the name has none)."""
        _, _, suffix = self.bucket.rpartition("-")
        return suffix if suffix.isdigit() else ""

    def sdk_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for qcloud_cos.CosConfig that point the SDK at this endpoint."""
        return {
            "Region": self.region,
            "SecretId": self.secret_id,
            "SecretKey": self.secret_key,
            "Scheme": self.scheme,
            "IP": self.host,
            "Port": self.port,
        }

    def env(self) -> dict[str, str]:
        return {
            "COS_REGION": self.region,
            "COS_BUCKET": self.bucket,
            "COS_SECRET_ID": self.secret_id,
            "COS_SECRET_KEY": self.secret_key,
            "COS_ENDPOINT_URL": self.endpoint_url,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CosEndpoint:
        """Build from COS_ENDPOINT_URL, COS_SECRET_ID, COS_SECRET_KEY (+ COS_REGION, COS_BUCKET)."""
        missing = [
            name
            for name in ("COS_ENDPOINT_URL", "COS_SECRET_ID", "COS_SECRET_KEY")
            if not environ.get(name)
        ]
        if missing:
            raise ValueError(f"external COS needs {', '.join(missing)}")
        parts = urlsplit(environ["COS_ENDPOINT_URL"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("COS_ENDPOINT_URL must be an http(s) URL with a host")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            region=environ.get("COS_REGION") or DEFAULT_REGION,
            bucket=environ.get("COS_BUCKET") or DEFAULT_BUCKET,
            secret_id=environ["COS_SECRET_ID"],
            secret_key=environ["COS_SECRET_KEY"],
        )


@dataclass(frozen=True)
class StackEndpoints:
    """Where the functions find PostgreSQL, Redis and COS."""

    database_url: str
    redis_url: str
    cos: CosEndpoint

    def env(self) -> dict[str, str]:
        """The environment variables the functions read (secrets included)."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            **self.cos.env(),
        }

    def describe(self) -> dict[str, str]:
        """The same variables with passwords and the COS secret key redacted, for display."""
        shown = self.env()
        shown["DATABASE_URL"] = redact_url(self.database_url)
        shown["REDIS_URL"] = redact_url(self.redis_url)
        shown["COS_SECRET_KEY"] = "***"  # noqa: S105 - the redaction marker
        return shown

    def __repr__(self) -> str:
        return (
            f"StackEndpoints(database_url={redact_url(self.database_url)!r}, "
            f"redis_url={redact_url(self.redis_url)!r}, cos={self.cos!r})"
        )

    __str__ = __repr__
