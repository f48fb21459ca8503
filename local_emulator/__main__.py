"""Entry point for `python -m local_emulator`."""

from __future__ import annotations

import sys

from local_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
