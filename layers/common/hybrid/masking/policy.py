"""Per-column masking policies applied to rows before they leave the customer network.

A policy names what happens to each column; columns it does not list are run through every
detector (``unlisted="detect"``, the default) or dropped (``unlisted="drop"``). Column names
match case-insensitively, as they do in the databases the connector reads.

Values are handled by type: ``None`` stays ``None`` and booleans stay as they are; numbers,
dates and any other scalar are masked through their string form (``detect`` replaces them with
the masked string only when masking changed it, so an ``int`` phone number becomes
``138****5678`` and an amount stays a number); dicts, lists, tuples and sets (JSON columns) are
walked, their keys masked as ``detect`` and their leaves by the column's policy, and nesting
deeper than 32 levels is masked as one string. The phone, ID, card and name masks keep too few
characters to hold PII; the domain that ``mask_email`` keeps is run through the detectors.
Rows are never changed in place. ``keep`` is taken at its word: the egress scanner will refuse
a kept column that holds PII.

A configuration (JSON or YAML) looks like this; a bare policy name is short for
``{policy: <name>}``, and a pseudonym's namespace defaults to the column's name::

    unlisted: detect
    columns:
      mobile: mask_phone
      id_no: mask_id_card
      customer_id: {policy: pseudonym, namespace: customer}
      remark: drop
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from datetime import date, timedelta
from datetime import time as dt_time
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, get_args

from hybrid.masking.errors import MaskingPolicyError
from hybrid.masking.masks import (
    Pseudonymizer,
    mask_bank_card,
    mask_email,
    mask_id_card,
    mask_name,
    mask_phone,
    mask_pii,
)

PolicyName = Literal[
    "keep",
    "drop",
    "mask_phone",
    "mask_id_card",
    "mask_bank_card",
    "mask_email",
    "mask_name",
    "pseudonym",
    "detect",
]
POLICY_NAMES: tuple[PolicyName, ...] = get_args(PolicyName)
UnlistedPolicy = Literal["detect", "drop"]
_UNLISTED_NAMES: tuple[UnlistedPolicy, ...] = get_args(UnlistedPolicy)
_CONFIG_KEYS = frozenset({"columns", "unlisted"})
_COLUMN_KEYS = frozenset({"policy", "namespace"})
_SHORT_NUMBER = 10**10
# Deeper nesting than this is masked through its string form instead of walked.
_MAX_DEPTH = 32

_Transform = Callable[[Any, int], Any]


@dataclass(frozen=True)
class ColumnPolicy:
    """What happens to one column: a policy name, and for ``pseudonym`` an optional namespace
    (columns that join must share one; it defaults to the column's name)."""

    policy: PolicyName
    namespace: str | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICY_NAMES:
            raise MaskingPolicyError(
                f"unknown policy {self.policy!r}; expected one of {', '.join(POLICY_NAMES)}"
            )
        if self.namespace is not None and (
            self.policy != "pseudonym" or not isinstance(self.namespace, str)
        ):
            raise MaskingPolicyError("a namespace is a string, and only for policy 'pseudonym'")


def _scalar_text(value: Any) -> str:
    """The string a non-string scalar is masked through (whole floats without ``.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _walk(value: Any, depth: int, leaf: Callable[[Any], Any]) -> Any:
    """Apply ``leaf`` to every scalar in ``value``, masking mapping keys with ``detect``."""
    if value is None or isinstance(value, bool):
        return value
    if depth > _MAX_DEPTH:
        return leaf(_scalar_text(value))
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            masked_key = _detect_leaf(key)
            suffix = 1
            candidate = masked_key
            while candidate in out:
                suffix += 1
                candidate = f"{masked_key}#{suffix}"
            out[candidate] = _walk(item, depth + 1, leaf)
        return out
    if isinstance(value, list | tuple):
        items = [_walk(item, depth + 1, leaf) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, Set):
        masked = (_walk(item, depth + 1, leaf) for item in value)
        return set(masked) if isinstance(value, set) else frozenset(masked)
    return leaf(value)


def _detect_leaf(value: Any) -> Any:
    # Dates and times are typed values: their digits are a moment, never a person.
    if value is None or isinstance(value, bool | date | dt_time | timedelta):
        return value
    if isinstance(value, str):
        return mask_pii(value)
    # Numbers with fewer than 11 digits are too short for any detector: the common case of
    # ids, counts and amounts costs no text conversion.
    if type(value) is int and -_SHORT_NUMBER < value < _SHORT_NUMBER:
        return value
    if type(value) is Decimal and value.is_finite() and len(value.as_tuple().digits) < 11:
        return value
    text = _scalar_text(value)
    masked = mask_pii(text)
    return value if masked is text else masked


def _masking_leaf(mask: Callable[[str], str]) -> Callable[[Any], Any]:
    def leaf(value: Any) -> Any:
        return mask(value if isinstance(value, str) else _scalar_text(value))

    return leaf


def _mask_email_checked(value: str) -> str:
    """:func:`mask_email`, then the detectors over the domain it keeps."""
    return mask_pii(mask_email(value))


def _pseudonym_leaf(pseudonymize: Pseudonymizer) -> Callable[[Any], Any]:
    def leaf(value: Any) -> Any:
        return pseudonymize(value if isinstance(value, str) else _scalar_text(value))

    return leaf


def _keep(value: Any, depth: int) -> Any:
    return value


def _walker(leaf: Callable[[Any], Any]) -> _Transform:
    def transform(value: Any, depth: int) -> Any:
        if type(value) is str:
            return leaf(value)
        return _walk(value, depth, leaf)

    return transform


_detect = _walker(_detect_leaf)

_MASKS: dict[str, Callable[[str], str]] = {
    "mask_phone": mask_phone,
    "mask_id_card": mask_id_card,
    "mask_bank_card": mask_bank_card,
    "mask_email": _mask_email_checked,
    "mask_name": mask_name,
}


class MaskingPolicy:
    """Masking for the rows of one table (or query): built once, applied to every row.

    Immutable after construction, so one instance may serve concurrent queries.
    """

    __slots__ = ("_by_folded", "_by_name", "_columns", "_unlisted", "_unlisted_transform")

    def __init__(
        self,
        columns: Mapping[str, ColumnPolicy | PolicyName],
        *,
        unlisted: UnlistedPolicy = "detect",
        pseudonym_key: bytes,
    ) -> None:
        if unlisted not in _UNLISTED_NAMES:
            raise MaskingPolicyError(
                f"unlisted must be one of {', '.join(_UNLISTED_NAMES)}, not {unlisted!r}"
            )
        resolved: dict[str, ColumnPolicy] = {}
        folded: dict[str, str] = {}
        for name, entry in columns.items():
            if not isinstance(name, str) or not name:
                raise MaskingPolicyError("column names must be non-empty strings")
            if name.casefold() in folded:
                raise MaskingPolicyError(
                    f"columns {folded[name.casefold()]!r} and {name!r} differ only in case"
                )
            folded[name.casefold()] = name
            resolved[name] = entry if isinstance(entry, ColumnPolicy) else ColumnPolicy(entry)
        # Derive the pseudonym keys (and validate the key) even when no column uses one, so a
        # bad key fails when the policy is built rather than on the first pseudonym column.
        Pseudonymizer(pseudonym_key, namespace="")
        self._columns = MappingProxyType(resolved)
        self._unlisted: UnlistedPolicy = unlisted
        self._unlisted_transform: _Transform | None = _detect if unlisted == "detect" else None
        self._by_name = {
            name: self._transform(name, policy, pseudonym_key) for name, policy in resolved.items()
        }
        self._by_folded = {name.casefold(): t for name, t in self._by_name.items()}

    @staticmethod
    def _transform(name: str, column: ColumnPolicy, key: bytes) -> _Transform | None:
        policy = column.policy
        if policy == "drop":
            return None
        if policy == "keep":
            return _keep
        if policy == "detect":
            return _detect
        if policy == "pseudonym":
            namespace = name if column.namespace is None else column.namespace
            return _walker(_pseudonym_leaf(Pseudonymizer(key, namespace=namespace)))
        return _walker(_masking_leaf(_MASKS[policy]))

    @property
    def columns(self) -> Mapping[str, ColumnPolicy]:
        """The listed columns and their policies."""
        return self._columns

    @property
    def unlisted(self) -> UnlistedPolicy:
        """What happens to columns the policy does not list."""
        return self._unlisted

    @classmethod
    def from_config(cls, config: Any, *, pseudonym_key: bytes) -> MaskingPolicy:
        """Build a policy from its parsed JSON/YAML form (see the module docstring).

        Raises :class:`MaskingPolicyError` naming the entry at fault for an unknown policy
        name, an unknown key or a value of the wrong type. The key is never part of the config.
        """
        if not isinstance(config, Mapping):
            raise MaskingPolicyError("a masking policy must be a mapping")
        unknown = sorted(str(key) for key in config if key not in _CONFIG_KEYS)
        if unknown:
            raise MaskingPolicyError(
                f"unknown masking policy keys: {', '.join(unknown)}; "
                f"expected {', '.join(sorted(_CONFIG_KEYS))}"
            )
        unlisted = config.get("unlisted", "detect")
        if unlisted not in _UNLISTED_NAMES:
            raise MaskingPolicyError(
                f"unlisted must be one of {', '.join(_UNLISTED_NAMES)}, not {unlisted!r}"
            )
        raw_columns = config.get("columns", {})
        if not isinstance(raw_columns, Mapping):
            raise MaskingPolicyError("columns must be a mapping of column name to policy")
        columns = {name: _column_from_config(name, entry) for name, entry in raw_columns.items()}
        return cls(columns, unlisted=unlisted, pseudonym_key=pseudonym_key)

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row as it may leave: dropped columns left out, every other value masked."""
        out: dict[str, Any] = {}
        by_name = self._by_name
        for column, value in row.items():
            if column in by_name:
                transform = by_name[column]
            else:
                transform = self._by_folded.get(str(column).casefold(), self._unlisted_transform)
            if transform is not None:
                out[column] = transform(value, 0)
        return out


def _column_from_config(name: Any, entry: Any) -> ColumnPolicy:
    if not isinstance(name, str) or not name:
        raise MaskingPolicyError(f"column name {name!r} must be a non-empty string")
    if isinstance(entry, str):
        policy, namespace = entry, None
    elif isinstance(entry, Mapping):
        unknown = sorted(str(key) for key in entry if key not in _COLUMN_KEYS)
        if unknown:
            raise MaskingPolicyError(
                f"column {name!r}: unknown keys {', '.join(unknown)}; expected policy, namespace"
            )
        if "policy" not in entry:
            raise MaskingPolicyError(f"column {name!r}: missing 'policy'")
        policy, namespace = entry["policy"], entry.get("namespace")
    else:
        raise MaskingPolicyError(f"column {name!r}: a policy name or a mapping is expected")
    if policy not in POLICY_NAMES:
        raise MaskingPolicyError(
            f"column {name!r}: unknown policy {policy!r}; expected one of {', '.join(POLICY_NAMES)}"
        )
    if namespace is not None and (policy != "pseudonym" or not isinstance(namespace, str)):
        raise MaskingPolicyError(
            f"column {name!r}: 'namespace' is a string, and only for policy 'pseudonym'"
        )
    return ColumnPolicy(policy, namespace)
