"""Per-column masking policies applied to rows, and their configuration."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import yaml

from hybrid.masking import (
    POLICY_NAMES,
    ColumnPolicy,
    MaskingPolicy,
    MaskingPolicyError,
    find_pii,
    pseudonym,
)

KEY = b"k" * 32
ID_1990 = "110105199003071239"
CARD = "6222021234567890128"


def policy(columns: dict[str, Any], **kwargs: Any) -> MaskingPolicy:
    return MaskingPolicy(columns, pseudonym_key=KEY, **kwargs)


def test_each_listed_policy_is_applied_to_its_column() -> None:
    masking = policy(
        {
            "name": "mask_name",
            "mobile": "mask_phone",
            "id_no": "mask_id_card",
            "card": "mask_bank_card",
            "email": "mask_email",
            "customer_id": "pseudonym",
            "status": "keep",
            "secret_note": "drop",
            "remark": "detect",
        }
    )
    row = {
        "name": "欧阳娜娜",
        "mobile": "13812345678",
        "id_no": ID_1990,
        "card": CARD,
        "email": "nana@example.com",
        "customer_id": "C-1001",
        "status": "13812345678 is kept as is",
        "secret_note": "anything",
        "remark": "call 13912345678",
    }
    assert masking.apply(row) == {
        "name": "欧阳**",
        "mobile": "138****5678",
        "id_no": "110105********1239",
        "card": "6222 **** **** 0128",
        "email": "n***@example.com",
        "customer_id": pseudonym("C-1001", KEY, namespace="customer_id"),
        "status": "13812345678 is kept as is",
        "remark": "call 139****5678",
    }


def test_unlisted_text_columns_are_detected_and_masked_by_default() -> None:
    row = {"note": "手机１３８１２３４５６７８", "city": "北京", "count": 3}
    assert policy({}).apply(row) == {"note": "手机138****5678", "city": "北京", "count": 3}


def test_unlisted_columns_are_dropped_when_the_policy_says_so() -> None:
    masking = policy({"id": "keep"}, unlisted="drop")
    assert masking.apply({"id": 7, "note": "13812345678", "city": "北京"}) == {"id": 7}


def test_numbers_that_read_as_pii_are_caught_by_detect() -> None:
    row = {
        "phone_int": 13812345678,
        "phone_float": 13812345678.0,
        "card_int": int(CARD),
        "id_decimal": Decimal(ID_1990),
        "amount": 99.5,
        "count": 12,
    }
    assert policy({}).apply(row) == {
        "phone_int": "138****5678",
        "phone_float": "138****5678",
        "card_int": "6222 **** **** 0128",
        "id_decimal": "110105********1239",
        "amount": 99.5,
        "count": 12,
    }


def test_none_stays_none_and_booleans_and_dates_are_untouched() -> None:
    masking = policy({"mobile": "mask_phone", "cid": "pseudonym", "name": "mask_name"})
    when = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
    row = {"mobile": None, "cid": None, "name": None, "flag": True, "at": when, "n": None}
    assert masking.apply(row) == row


def test_int_phone_number_in_a_phone_column_is_masked() -> None:
    assert policy({"mobile": "mask_phone"}).apply({"mobile": 13812345678}) == {
        "mobile": "138****5678"
    }


def test_nested_json_values_are_walked_keys_and_all() -> None:
    row = {
        "profile": {
            "contacts": [{"type": "mobile", "value": "13812345678"}, {"value": 13912345678}],
            "13712345678": "primary",
            "id": {"no": ID_1990, "tags": ("a", "zs@example.com")},
            "score": 3.5,
            "none": None,
        }
    }
    assert policy({}).apply(row) == {
        "profile": {
            "contacts": [{"type": "mobile", "value": "138****5678"}, {"value": "139****5678"}],
            "137****5678": "primary",
            "id": {"no": "110105********1239", "tags": ("a", "z***@example.com")},
            "score": 3.5,
            "none": None,
        }
    }


def test_explicit_mask_on_a_json_column_masks_every_leaf() -> None:
    masking = policy({"phones": "mask_phone"})
    assert masking.apply({"phones": ["13812345678", {"home": "13987654321"}]}) == {
        "phones": ["138****5678", {"home": "139****4321"}]
    }


def test_keys_that_mask_alike_are_both_kept() -> None:
    row = {"j": {"13812345678": 1, "13800005678": 2}}
    assert policy({}).apply(row) == {"j": {"138****5678": 1, "138****5678#2": 2}}


def test_deep_nesting_is_masked_through_its_string_form() -> None:
    value: Any = "13812345678"
    for _ in range(60):
        value = [value]
    masked = policy({}).apply({"deep": value})
    assert find_pii(json.dumps(masked)) == []
    assert "13812345678" not in json.dumps(masked)


def test_column_names_match_case_insensitively() -> None:
    masking = policy({"Name": "mask_name", "MOBILE": "drop"})
    assert masking.apply({"name": "张三", "mobile": "13812345678"}) == {"name": "张*"}


def test_join_columns_share_a_pseudonym_through_their_namespace() -> None:
    orders = policy({"customer_id": ColumnPolicy("pseudonym", namespace="customer")})
    customers = policy({"id": ColumnPolicy("pseudonym", namespace="customer")})
    assert orders.apply({"customer_id": 42})["customer_id"] == customers.apply({"id": "42"})["id"]
    other_key = MaskingPolicy({"id": "pseudonym"}, pseudonym_key=b"o" * 32)
    assert other_key.apply({"id": "42"}) != policy({"id": "pseudonym"}).apply({"id": "42"})


def test_policy_is_built_from_yaml_config() -> None:
    config = yaml.safe_load(
        """
        unlisted: drop
        columns:
          name: mask_name
          mobile: {policy: mask_phone}
          customer_id: {policy: pseudonym, namespace: customer}
        """
    )
    masking = MaskingPolicy.from_config(config, pseudonym_key=KEY)
    assert masking.unlisted == "drop"
    assert masking.columns["customer_id"] == ColumnPolicy("pseudonym", "customer")
    assert masking.apply({"name": "张三", "mobile": "13812345678", "customer_id": 1, "x": 1}) == {
        "name": "张*",
        "mobile": "138****5678",
        "customer_id": pseudonym("1", KEY, namespace="customer"),
    }


def test_policy_is_built_from_json_config_with_defaults() -> None:
    masking = MaskingPolicy.from_config(json.loads('{"columns": {"a": "keep"}}'), pseudonym_key=KEY)
    assert masking.unlisted == "detect"
    assert masking.columns == {"a": ColumnPolicy("keep")}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"columns": {"mobile": "mask_fone"}}, "column 'mobile': unknown policy 'mask_fone'"),
        ({"columns": {"m": {"policy": "hash"}}}, "column 'm': unknown policy 'hash'"),
        ({"columns": {"m": {"namespace": "x"}}}, "column 'm': missing 'policy'"),
        ({"columns": {"m": {"policy": "keep", "namespace": "x"}}}, "only for policy 'pseudonym'"),
        ({"columns": {"m": {"policy": "keep", "mode": "x"}}}, "column 'm': unknown keys mode"),
        ({"columns": {"m": 3}}, "column 'm': a policy name or a mapping"),
        ({"columns": ["m"]}, "columns must be a mapping"),
        ({"columns": {"A": "keep", "a": "drop"}}, "differ only in case"),
        ({"unlisted": "keep"}, "unlisted must be one of detect, drop"),
        ({"column": {}}, "unknown masking policy keys: column"),
        (["keep"], "must be a mapping"),
    ],
)
def test_invalid_config_is_refused_with_a_clear_error(config: Any, message: str) -> None:
    with pytest.raises(MaskingPolicyError, match=message.replace("(", r"\(")):
        MaskingPolicy.from_config(config, pseudonym_key=KEY)


def test_unknown_policy_name_in_code_is_refused() -> None:
    with pytest.raises(MaskingPolicyError, match="unknown policy 'hash'"):
        policy({"a": "hash"})
    assert "detect" in POLICY_NAMES


def test_short_pseudonym_key_is_refused_when_the_policy_is_built() -> None:
    with pytest.raises(MaskingPolicyError, match="16 bytes"):
        MaskingPolicy({}, pseudonym_key=b"short")


def test_masking_does_not_change_the_input_row() -> None:
    row = {"note": "13812345678", "j": {"phones": ["13912345678"]}}
    snapshot = json.dumps(row)
    policy({}).apply(row)
    assert json.dumps(row) == snapshot
