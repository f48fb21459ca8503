"""The environment the emulator gives the functions on top of the stack's endpoints:
local settings and secrets, generated once and kept in the data folder (mode 0600)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

LOCAL_SECRETS_FILE = "local-secrets.json"


def local_secrets(data_dir: Path) -> dict[str, str]:
    """OPERATOR_KEY and SECRETS_ENCRYPTION_KEY for this data folder (created on first use)."""
    path = data_dir / LOCAL_SECRETS_FILE
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "OPERATOR_KEY": "hop_" + secrets.token_urlsafe(24),
        "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(values, handle)
    return values


def function_environment(
    data_dir: Path, stack_env: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """Overrides for `${env.X}` in serverless.yml when running locally: local defaults and
    secrets unless the shell sets them, then the stack's endpoints."""
    defaults = {
        "STAGE": "local",
        "REGION": "ap-guangzhou",
        "APP_ENV": "local",
        "LOG_LEVEL": "INFO",
        "QUEUE_BACKEND": "local",
        # Local alert receivers (the demo's inbox) listen on loopback.
        "ALERTS_ALLOW_PRIVATE_TARGETS": "true",
        **local_secrets(data_dir),
    }
    chosen = {name: value for name, value in defaults.items() if not environ.get(name)}
    return {**chosen, **stack_env}
