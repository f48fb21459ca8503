"""PII masking, shared by the on-prem connector and the cloud: detectors (`detect`), display
masks and pseudonyms (`masks`), per-column policies applied to rows (`policy`) and the egress
scanner that refuses a chunk still holding PII (`egress`). Standard library only.

The connector masks each row with :meth:`MaskingPolicy.apply` and passes every chunk through
:func:`assert_clean` before it leaves the customer network.
"""

from __future__ import annotations

from hybrid.masking.detect import (
    PII_KINDS,
    PiiKind,
    Span,
    find_bank_cards,
    find_emails,
    find_id_cards,
    find_phones,
    find_pii,
    id_check_char,
    is_id_number,
    is_mobile,
    luhn_valid,
    normalise,
)
from hybrid.masking.egress import UNSCANNABLE, Finding, assert_clean, scan
from hybrid.masking.errors import MaskingError, MaskingPolicyError, PiiLeakError
from hybrid.masking.masks import (
    Pseudonymizer,
    mask_bank_card,
    mask_email,
    mask_id_card,
    mask_name,
    mask_phone,
    mask_pii,
    pseudonym,
)
from hybrid.masking.policy import POLICY_NAMES, ColumnPolicy, MaskingPolicy, PolicyName

__all__ = [
    "PII_KINDS",
    "POLICY_NAMES",
    "UNSCANNABLE",
    "ColumnPolicy",
    "Finding",
    "MaskingError",
    "MaskingPolicy",
    "MaskingPolicyError",
    "PiiKind",
    "PiiLeakError",
    "PolicyName",
    "Pseudonymizer",
    "Span",
    "assert_clean",
    "find_bank_cards",
    "find_emails",
    "find_id_cards",
    "find_phones",
    "find_pii",
    "id_check_char",
    "is_id_number",
    "is_mobile",
    "luhn_valid",
    "mask_bank_card",
    "mask_email",
    "mask_id_card",
    "mask_name",
    "mask_phone",
    "mask_pii",
    "normalise",
    "pseudonym",
    "scan",
]
