"""The on-prem connector: runs inside the customer's network, reads their databases through
read-only layers (`connector.sqlguard`, `connector.sources`) and sends only masked rows out.

The connector uses four stdlib-only modules of the shared layer (``hybrid.signing``,
``hybrid.masking``, ``hybrid.connectors.protocol``, ``hybrid.errors``); its container copies
exactly those. In a checkout of the repository (``python -m connector`` from its root) the
layer directory is put on ``sys.path`` when ``hybrid`` is not importable otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"


def _add_layer_path() -> None:
    if importlib.util.find_spec("hybrid") is not None:
        return
    layer = Path(__file__).resolve().parent.parent / "layers" / "common"
    if (layer / "hybrid").is_dir() and str(layer) not in sys.path:
        sys.path.insert(0, str(layer))


_add_layer_path()
