"""Structured JSON logging (structlog), one line per event, with secrets redacted.

The redaction processor runs right after the context is merged, before anything renders, so no
processor or renderer ever sees a secret: known secret values (registered from settings), secret-
looking keys, credentials inside URLs, bearer tokens and API keys are replaced.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|operator[_-]?key|signature|cookie|"
    r"credential|private[_-]?key|database_url|redis_url|dsn)",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@", re.I
)
_BEARER = re.compile(r"(?P<prefix>\b(bearer|basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_API_KEY = re.compile(r"\b(hk|hop|whsec|csec)_[A-Za-z0-9_-]{8,}")

_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_configured = False
_MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is redacted wherever it appears in a log line."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _known_secrets.add(value)


def redact_text(text: str) -> str:
    """Remove every known secret and secret-looking token from a string."""
    with _secrets_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m['prefix']}{REDACTED}", text)
    return _API_KEY.sub(REDACTED, text)


def redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", True, False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: redact every field, including rendered exceptions."""
    for key in list(event_dict):
        event_dict[key] = redact_value(key, event_dict[key]) if key != "event" else event_dict[key]
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = redact_text(event_dict["event"])
    return event_dict


def _redact_rendered(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in ("exception", "stack"):
        if isinstance(event_dict.get(key), str):
            event_dict[key] = redact_text(event_dict[key])
    return event_dict


class _RedactingFormatter(logging.Formatter):
    """Formats third-party library records as one redacted JSON-ish line."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        payload = {
            "event": redact_text(record.getMessage()),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.exc_info:
            payload["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def configure(level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    global _configured
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if _configured:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(numeric))
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            redact_event,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_rendered,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_RedactingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries (COS SDK, urllib3) log request headers at DEBUG; keep them quiet.
    root.setLevel(max(numeric, logging.WARNING))
    _configured = True


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()


def bind(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**values)


def clear() -> None:
    structlog.contextvars.clear_contextvars()
