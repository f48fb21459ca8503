"""Load a function's handler module the way SCF does: from its file, as `index`, fresh."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_function(folder: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"{folder}_index_under_test", ROOT / "functions" / folder / "index.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
