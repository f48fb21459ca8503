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


_GENERATORS = {
    "OPERATOR_KEY": lambda: "hop_" + secrets.token_urlsafe(24),
    "SECRETS_ENCRYPTION_KEY": lambda: base64.b64encode(os.urandom(32)).decode(),
    "INTERNAL_API_KEY": lambda: "hik_" + secrets.token_urlsafe(24),
}


def local_secrets(data_dir: Path) -> dict[str, str]:
    """OPERATOR_KEY, SECRETS_ENCRYPTION_KEY and INTERNAL_API_KEY for this data folder (created
    on first use; a folder from an older version gets the ones it lacks)."""
    path = data_dir / LOCAL_SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in _GENERATORS.items() if name not in stored}
    if not missing:
        return stored
    values = {**stored, **missing}
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(values, handle)
    os.replace(partial, path)
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
