"""The connector's configuration: a YAML file (``--config PATH`` or ``CONNECTOR_CONFIG``) with
environment overrides, checked once at start into frozen dataclasses.

Environment overrides (they win over the file): ``CONNECTOR_ID``, ``CONNECTOR_SECRET``,
``CONNECTOR_TRANSPORT``, ``CONNECTOR_CLOUD_URL``, ``CONNECTOR_LISTEN``, ``CONNECTOR_DATA_DIR``,
``CONNECTOR_LOW_BANDWIDTH``, ``CONNECTOR_PSEUDONYM_KEY``, ``CONNECTOR_LOG_LEVEL``. A source's
database URL may come from the environment too (``url_env``). See ``config.example.yaml``.

Every `ConfigError` names the field at fault and never shows a secret's value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hybrid.masking import MaskingPolicy, MaskingPolicyError
from hybrid.signing import MIN_SECRET_BYTES, decode_secret

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DEFAULT_LISTEN = "0.0.0.0:8443"
DEFAULT_DATA_DIR = "/var/lib/connector"
DEFAULT_CHUNK_ROWS = 5_000
DEFAULT_MAX_ROWS = 50_000
DEFAULT_SPOOL_MAX_BYTES = 1 * GIB
DEFAULT_MAX_BYTES_PER_S = 256 * KIB
DEFAULT_POLL_WAIT = 20
DEFAULT_POLL_WAIT_LOW_BANDWIDTH = 25
DEFAULT_IDLE_PAUSE_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_MS = 15_000
DEFAULT_SOURCE_MAX_BYTES = 64 * MIB
MIN_PSEUDONYM_KEY_BYTES = 16
ENGINES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
URL_SCHEMES = {"postgresql": ("postgresql", "postgres"), "mysql": ("mysql", "mariadb")}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
WILDCARD = "*"

_TOP_KEYS = frozenset(
    {
        "connector_id",
        "secret",
        "secret_file",
        "transport",
        "cloud_url",
        "listen",
        "data_dir",
        "low_bandwidth",
        "pseudonym_key",
        "pseudonym_key_file",
        "log_level",
        "sources",
        "chunk_rows",
        "max_rows",
        "spool_max_bytes",
        "max_bytes_per_s",
        "poll_wait",
        "idle_pause_s",
        "retry_base_s",
        "retry_cap_s",
        "tls_cert",
        "tls_key",
    }
)
_SOURCE_KEYS = frozenset(
    {
        "engine",
        "url",
        "url_env",
        "schema",
        "allowed_tables",
        "statement_timeout_ms",
        "max_rows",
        "max_bytes",
        "masking",
        "pool_size",
    }
)
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SIZE = re.compile(r"\s*([0-9]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": KIB, "m": MIB, "g": GIB}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# Masking configs are checked with a stand-in key: the key plays no part in their validity.
_CHECK_KEY = bytes(32)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field, never a secret's value."""


@dataclass(frozen=True)
class SourceConfig:
    """One customer database. `schema` is PostgreSQL's schema or MySQL's database; `masking`
    maps a table (``table``/``schema.table``) or ``"*"`` (every other table) to a
    `MaskingPolicy.from_config` mapping."""

    name: str
    engine: str
    url: str = field(repr=False)
    schema: str
    allowed_tables: tuple[str, ...]
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_SOURCE_MAX_BYTES
    masking: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pool_size: int = 4


@dataclass(frozen=True)
class ConnectorConfig:
    """The whole configuration (see the module docstring and ``config.example.yaml``)."""

    secret: str = field(repr=False)
    sources: Mapping[str, SourceConfig]
    connector_id: str = "connector"
    transport: str = "tunnel"
    cloud_url: str | None = None
    listen_host: str = "0.0.0.0"  # noqa: S104
    listen_port: int = 8443
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    low_bandwidth: bool = False
    pseudonym_key: bytes | None = field(default=None, repr=False)
    log_level: str = "INFO"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    max_rows: int = DEFAULT_MAX_ROWS
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    max_bytes_per_s: int = DEFAULT_MAX_BYTES_PER_S
    poll_wait: int = DEFAULT_POLL_WAIT
    idle_pause_s: float = DEFAULT_IDLE_PAUSE_S
    retry_base_s: float = 0.5
    retry_cap_s: float = 60.0
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def digest_path(self) -> Path:
        return self.data_dir / "digests.sqlite3"

    @property
    def heartbeat_path(self) -> Path:
        return self.data_dir / "heartbeat"

    @property
    def pseudonym_key_path(self) -> Path:
        return self.data_dir / "pseudonym.key"


def config_path(argument: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The file to read: ``--config`` first, then ``CONNECTOR_CONFIG``; None for env only."""
    if argument:
        return Path(argument)
    named = env.get("CONNECTOR_CONFIG", "").strip()
    return Path(named) if named else None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> ConnectorConfig:
    """Read and check the configuration; raises `ConfigError`."""
    env = os.environ if env is None else env
    file = config_path(path, env)
    raw: Mapping[str, Any] = {}
    if file is not None:
        raw = _read_yaml(file)
    return parse_config(raw, env, base_dir=file.parent if file is not None else Path.cwd())


def _read_yaml(file: Path) -> Mapping[str, Any]:
    import yaml

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {file}: cannot be read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {file}: not valid YAML{where}") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file {file}: the top level must be a mapping")
    return raw


def parse_config(
    raw: Mapping[str, Any], env: Mapping[str, str], *, base_dir: Path | None = None
) -> ConnectorConfig:
    """The checked configuration from the file's mapping and the environment."""
    unknown = sorted(str(key) for key in raw if key not in _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    base = base_dir or Path.cwd()
    merged = dict(raw)
    for key, name in (
        ("connector_id", "CONNECTOR_ID"),
        ("secret", "CONNECTOR_SECRET"),
        ("transport", "CONNECTOR_TRANSPORT"),
        ("cloud_url", "CONNECTOR_CLOUD_URL"),
        ("listen", "CONNECTOR_LISTEN"),
        ("data_dir", "CONNECTOR_DATA_DIR"),
        ("low_bandwidth", "CONNECTOR_LOW_BANDWIDTH"),
        ("pseudonym_key", "CONNECTOR_PSEUDONYM_KEY"),
        ("log_level", "CONNECTOR_LOG_LEVEL"),
    ):
        if env.get(name, "").strip():
            merged[key] = env[name].strip()
            if key in ("secret", "pseudonym_key"):
                merged.pop(f"{key}_file", None)

    transport = _choice(merged, "transport", ("tunnel", "relay"), "tunnel")
    low_bandwidth = _bool(merged, "low_bandwidth", False)
    connector_id = _string(merged, "connector_id", "connector")
    if not _ID.fullmatch(connector_id):
        raise ConfigError("connector_id: letters, digits, '_', '-' and '.' only (1-64)")
    cloud_url = _cloud_url(merged.get("cloud_url"), required=transport == "relay")
    host, port = _listen(_string(merged, "listen", DEFAULT_LISTEN))
    max_rows = _positive(merged, "max_rows", DEFAULT_MAX_ROWS)
    tls_cert = _path(merged, "tls_cert", base)
    tls_key = _path(merged, "tls_key", base)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("tls_cert/tls_key: give both or neither")
    return ConnectorConfig(
        secret=_secret(merged, base),
        sources=_sources(merged.get("sources"), env, max_rows),
        connector_id=connector_id,
        transport=transport,
        cloud_url=cloud_url,
        listen_host=host,
        listen_port=port,
        data_dir=_path(merged, "data_dir", base) or Path(DEFAULT_DATA_DIR),
        low_bandwidth=low_bandwidth,
        pseudonym_key=_pseudonym_key(merged, base),
        log_level=_choice(merged, "log_level", LOG_LEVELS, "INFO", upper=True),
        chunk_rows=_positive(merged, "chunk_rows", DEFAULT_CHUNK_ROWS),
        max_rows=max_rows,
        spool_max_bytes=_size(merged, "spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES, minimum=MIB),
        max_bytes_per_s=_size(merged, "max_bytes_per_s", DEFAULT_MAX_BYTES_PER_S, minimum=0),
        poll_wait=_int(
            merged,
            "poll_wait",
            DEFAULT_POLL_WAIT_LOW_BANDWIDTH if low_bandwidth else DEFAULT_POLL_WAIT,
            minimum=0,
            maximum=60,
        ),
        idle_pause_s=_number(merged, "idle_pause_s", DEFAULT_IDLE_PAUSE_S, maximum=600),
        retry_base_s=_number(merged, "retry_base_s", 0.5, maximum=60),
        retry_cap_s=_number(merged, "retry_cap_s", 60.0, maximum=3600),
        tls_cert=tls_cert,
        tls_key=tls_key,
    )


# --- fields -----------------------------------------------------------------------------------


def _string(raw: Mapping[str, Any], name: str, default: str) -> str:
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{name}: must be a string")
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{name}: must not be empty")
    return text


def _choice(
    raw: Mapping[str, Any],
    name: str,
    choices: tuple[str, ...],
    default: str,
    *,
    upper: bool = False,
) -> str:
    value = _string(raw, name, default)
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}")
    return value


def _bool(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}: must be true or false")


def _int(
    raw: Mapping[str, Any], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    value = raw.get(name, default)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name}: must be a whole number")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum else "")
        raise ConfigError(f"{name}: must be {bounds}")
    return value


def _positive(raw: Mapping[str, Any], name: str, default: int) -> int:
    return _int(raw, name, default, minimum=1)


def _number(raw: Mapping[str, Any], name: str, default: float, *, maximum: float) -> float:
    value = raw.get(name, default)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: must be a number of seconds") from None
    if isinstance(value, bool) or not 0 <= number <= maximum:
        raise ConfigError(f"{name}: must be between 0 and {maximum:g}")
    return number


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string like ``256KiB``, ``64 MiB``, ``1GiB`` (k/m/g are
    binary units); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(str(value))
    if not match:
        raise ValueError("not a size")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def _size(raw: Mapping[str, Any], name: str, default: int, *, minimum: int) -> int:
    value = raw.get(name, default)
    if value is None:
        return default
    try:
        size = parse_size(value)
    except ValueError:
        raise ConfigError(f"{name}: must be a byte count such as 1048576 or '1MiB'") from None
    if size < minimum:
        raise ConfigError(f"{name}: must be at least {minimum} bytes")
    return size


def _path(raw: Mapping[str, Any], name: str, base: Path) -> Path | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name}: must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _read_secret_file(raw: Mapping[str, Any], name: str, base: Path) -> str | None:
    path = _path(raw, name, base)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}: {path} cannot be read ({exc.strerror})") from None


def _secret(raw: Mapping[str, Any], base: Path) -> str:
    secret = raw.get("secret")
    if secret is None:
        secret = _read_secret_file(raw, "secret_file", base)
    if not secret or not isinstance(secret, str):
        raise ConfigError("secret: missing (set CONNECTOR_SECRET, secret or secret_file)")
    secret = secret.strip()
    try:
        key = decode_secret(secret)
    except ValueError:
        raise ConfigError("secret: not a valid whsec_… secret (base64 after the prefix)") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"secret: too short (at least {MIN_SECRET_BYTES} bytes of key)")
    return secret


def parse_key(text: str) -> bytes:
    """Key bytes from ``hex:…``, ``base64:…``, or without a prefix from hex (an even number of
    hex digits) or else base64 (standard or URL-safe); ValueError otherwise."""
    text = text.strip()
    kind, colon, rest = text.partition(":")
    if colon and kind in ("hex", "base64"):
        text = rest.strip()
        if kind == "hex":
            return bytes.fromhex(text)
    elif len(text) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", text):
        return bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not hex or base64") from None


def _pseudonym_key(raw: Mapping[str, Any], base: Path) -> bytes | None:
    text = raw.get("pseudonym_key")
    if text is None:
        text = _read_secret_file(raw, "pseudonym_key_file", base)
    if text is None:
        return None
    if not isinstance(text, str):
        raise ConfigError("pseudonym_key: must be hex or base64 text")
    try:
        key = parse_key(text)
    except ValueError:
        raise ConfigError("pseudonym_key: must be hex or base64 text") from None
    if len(key) < MIN_PSEUDONYM_KEY_BYTES:
        raise ConfigError(f"pseudonym_key: at least {MIN_PSEUDONYM_KEY_BYTES} bytes are needed")
    return key


def _cloud_url(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ConfigError("cloud_url: required for the relay transport")
        return None
    if not isinstance(value, str):
        raise ConfigError("cloud_url: must be a URL")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("cloud_url: must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("cloud_url: no query, fragment or credentials allowed")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError("cloud_url: bad port") from None
    return value.strip().rstrip("/")


def _listen(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("listen: must be host:port, e.g. 0.0.0.0:8443")
    return host, int(port_text)


def _sources(value: Any, env: Mapping[str, str], max_rows: int) -> dict[str, SourceConfig]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("sources: at least one source is required (a mapping name → source)")
    return {str(name): _source(str(name), entry, env, max_rows) for name, entry in value.items()}


def _source(name: str, raw: Any, env: Mapping[str, str], max_rows: int) -> SourceConfig:
    where = f"sources.{name}"
    if not _ID.fullmatch(name):
        raise ConfigError(f"{where}: a source name uses letters, digits, '_', '-' and '.' only")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(str(key) for key in raw if key not in _SOURCE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys: {', '.join(unknown)}")
    engine_name = str(raw.get("engine", "")).strip().lower()
    if engine_name not in ENGINES:
        raise ConfigError(f"{where}.engine: must be postgresql or mysql")
    engine = ENGINES[engine_name]
    url = _source_url(where, raw, env)
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES[engine]:
        schemes = " or ".join(f"{s}://" for s in URL_SCHEMES[engine])
        raise ConfigError(f"{where}.url: a {engine} source needs a {schemes} URL")
    schema = raw.get("schema")
    if schema is None:
        schema = "public" if engine == "postgresql" else parts.path.lstrip("/")
    if not isinstance(schema, str) or not schema.strip():
        raise ConfigError(f"{where}.schema: required (the database a MySQL source reads)")
    tables = raw.get("allowed_tables")
    if (
        not isinstance(tables, list)
        or not tables
        or not all(isinstance(t, str) and t.strip() for t in tables)
    ):
        raise ConfigError(f"{where}.allowed_tables: must list at least one table name")
    masking = _masking(where, raw.get("masking"))
    fields = {
        key: raw[key]
        for key in ("statement_timeout_ms", "max_rows", "max_bytes", "pool_size")
        if key in raw
    }
    prefixed = {f"{where}.{key}": value for key, value in fields.items()}
    return SourceConfig(
        name=name,
        engine=engine,
        url=url,
        schema=schema.strip(),
        allowed_tables=tuple(t.strip() for t in tables),
        statement_timeout_ms=_int(
            prefixed,
            f"{where}.statement_timeout_ms",
            DEFAULT_STATEMENT_TIMEOUT_MS,
            minimum=1,
            maximum=3_600_000,
        ),
        max_rows=min(_positive(prefixed, f"{where}.max_rows", max_rows), max_rows),
        max_bytes=_size(prefixed, f"{where}.max_bytes", DEFAULT_SOURCE_MAX_BYTES, minimum=KIB),
        masking=masking,
        pool_size=_int(prefixed, f"{where}.pool_size", 4, minimum=1, maximum=64),
    )


def _source_url(where: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> str:
    url, url_env = raw.get("url"), raw.get("url_env")
    if (url is None) == (url_env is None):
        raise ConfigError(f"{where}: give exactly one of url and url_env")
    if url_env is not None:
        if not isinstance(url_env, str) or not url_env.strip():
            raise ConfigError(f"{where}.url_env: must name an environment variable")
        url = env.get(url_env.strip(), "").strip()
        if not url:
            raise ConfigError(f"{where}.url_env: environment variable {url_env} is not set")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}.url: must be a database URL")
    return url.strip()


def _masking(where: str, value: Any) -> dict[str, Mapping[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.masking: must map a table (or '*') to a masking policy")
    out: dict[str, Mapping[str, Any]] = {}
    for table, policy in value.items():
        if not isinstance(table, str) or not table.strip():
            raise ConfigError(f"{where}.masking: table names must be non-empty strings")
        try:
            MaskingPolicy.from_config(policy, pseudonym_key=_CHECK_KEY)
        except MaskingPolicyError as exc:
            raise ConfigError(f"{where}.masking.{table}: {exc}") from None
        out[table.strip()] = policy
    return out
