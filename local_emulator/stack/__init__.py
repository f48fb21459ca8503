"""Embedded PostgreSQL, Redis and COS (S3-compatible) servers for the local emulator and tests.

``LocalStack(data_dir).start()`` runs all three on 127.0.0.1 and returns their
:class:`StackEndpoints`; :func:`resolve_stack` uses external servers named in the environment
instead, each independently. ``python -m local_emulator.stack`` runs a stack by hand.

Names are imported lazily so that ``python -m local_emulator.stack.cos`` (the COS child
process) does not import the server modules twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_emulator.stack._process import StackError
    from local_emulator.stack.endpoints import (
        DEFAULT_BUCKET,
        DEFAULT_REGION,
        CosEndpoint,
        StackEndpoints,
    )
    from local_emulator.stack.local_stack import ALL_SERVICES, LocalStack, resolve_stack

_EXPORTS = {
    "StackError": "local_emulator.stack._process",
    "DEFAULT_BUCKET": "local_emulator.stack.endpoints",
    "DEFAULT_REGION": "local_emulator.stack.endpoints",
    "CosEndpoint": "local_emulator.stack.endpoints",
    "StackEndpoints": "local_emulator.stack.endpoints",
    "ALL_SERVICES": "local_emulator.stack.local_stack",
    "LocalStack": "local_emulator.stack.local_stack",
    "resolve_stack": "local_emulator.stack.local_stack",
}

__all__ = [
    "ALL_SERVICES",
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
    "CosEndpoint",
    "LocalStack",
    "StackEndpoints",
    "StackError",
    "resolve_stack",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
