"""The errors raised by :mod:`hybrid.masking`. None of their messages ever holds a data value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybrid.masking.egress import Finding

_LISTED_FINDINGS = 5


class MaskingError(Exception):
    """Base class of the errors raised by :mod:`hybrid.masking`."""


class MaskingPolicyError(MaskingError, ValueError):
    """A masking policy (or its pseudonym key) is invalid; the message names the offending entry."""


class PiiLeakError(MaskingError):
    """The egress scanner found PII in a chunk that was about to leave: nothing may be sent.

    ``findings`` holds every kind and path found; the message names the first few.
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings: tuple[Finding, ...] = tuple(findings)
        listed = ", ".join(f"{f.kind} at {f.path}" for f in self.findings[:_LISTED_FINDINGS])
        more = len(self.findings) - _LISTED_FINDINGS
        suffix = f" and {more} more" if more > 0 else ""
        super().__init__(f"unmasked pii in outgoing chunk: {listed}{suffix}")
