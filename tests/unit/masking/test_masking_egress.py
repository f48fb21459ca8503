"""The egress scanner refuses chunks that still hold PII, names where, never what."""

from __future__ import annotations

from typing import Any

import pytest

from hybrid.masking import (
    UNSCANNABLE,
    Finding,
    MaskingPolicy,
    PiiLeakError,
    assert_clean,
    scan,
)

ID_1990 = "110105199003071239"
MASKED_ROW = {
    "name": "张*",
    "mobile": "138****5678",
    "mobile_intl": "+86 138****5678",
    "id_no": "110105********1239",
    "card": "6222 **** **** 0128",
    "email": "z***@example.com",
    "customer_id": "psd_abcdefghijklmnopqrst",
    "amount": 99.5,
    "at": None,
}


def test_masked_rows_pass_the_scanner() -> None:
    assert scan([MASKED_ROW, MASKED_ROW]) == []
    assert_clean([MASKED_ROW])


def test_chunk_with_a_raw_value_is_refused_naming_kind_and_path_but_not_the_value() -> None:
    chunk = [MASKED_ROW, {**MASKED_ROW, "remark": f"身份证 {ID_1990}"}]
    with pytest.raises(PiiLeakError) as caught:
        assert_clean(chunk)
    assert caught.value.findings == (Finding("id_card", "$[1].remark"),)
    assert "id_card at $[1].remark" in str(caught.value)
    assert ID_1990 not in str(caught.value)
    assert "110105" not in str(caught.value)


def test_each_kind_is_reported_where_it_is() -> None:
    chunk = [
        {"a": "13812345678", "b": "zs@example.com"},
        {"c": {"list": [1, "4111 1111 1111 1111"]}},
        {"d": "１３８１２３４５６７８ and 4111111111111111"},
    ]
    assert scan(chunk) == [
        Finding("phone", "$[0].a"),
        Finding("email", "$[0].b"),
        Finding("bank_card", "$[1].c.list[1]"),
        Finding("phone", "$[2].d"),
        Finding("bank_card", "$[2].d"),
    ]


def test_a_key_holding_pii_is_reported_with_the_key_masked() -> None:
    findings = scan([{"j": {"13812345678": "primary"}}])
    assert findings == [Finding("phone", "$[0].j.138****5678")]


def test_numbers_and_bytes_are_scanned_too() -> None:
    chunk = [
        {"phone": 13812345678, "blob": ID_1990.encode(), "raw": bytearray(b"4111111111111111")}
    ]
    assert scan(chunk) == [
        Finding("phone", "$[0].phone"),
        Finding("id_card", "$[0].blob"),
        Finding("bank_card", "$[0].raw"),
    ]


class Opaque:
    def __str__(self) -> str:
        return "contact: 13812345678"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_unexpected_types_are_scanned_in_their_string_form() -> None:
    assert scan([{"x": Opaque()}]) == [Finding("phone", "$[0].x")]


def test_a_value_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(PiiLeakError, match=UNSCANNABLE):
        assert_clean([{"x": Unprintable()}])


def test_a_single_row_or_string_is_scanned_whole_not_character_by_character() -> None:
    assert scan({"mobile": "13812345678"}) == [Finding("phone", "$.mobile")]
    assert scan("13812345678") == [Finding("phone", "$")]
    assert scan(b"13812345678") == [Finding("phone", "$")]


def test_generators_of_rows_are_scanned() -> None:
    assert scan(row for row in [{"a": "ok"}, {"a": "13812345678"}]) == [Finding("phone", "$[1].a")]


def test_self_referencing_and_deep_values_end_and_are_still_scanned() -> None:
    loop: list[Any] = ["13812345678"]
    loop.append(loop)
    assert scan([loop]) == [Finding("phone", "$[0][0]")]
    deep: Any = "13812345678"
    for _ in range(50):
        deep = [deep]
    assert [f.kind for f in scan([deep])] == ["phone"]


def test_many_findings_are_summarised_in_the_message() -> None:
    with pytest.raises(PiiLeakError, match="and 7 more") as caught:
        assert_clean([{"m": "13812345678"}] * 12)
    assert len(caught.value.findings) == 12


def test_keep_column_with_pii_is_refused_at_egress() -> None:
    masking = MaskingPolicy({"mobile": "keep"}, pseudonym_key=b"k" * 32)
    with pytest.raises(PiiLeakError, match=r"phone at \$\[0\]\.mobile"):
        assert_clean([masking.apply({"mobile": "13812345678"})])


def test_policy_output_passes_the_scanner() -> None:
    masking = MaskingPolicy(
        {"name": "mask_name", "mobile": "mask_phone", "email": "mask_email", "cid": "pseudonym"},
        pseudonym_key=b"k" * 32,
    )
    rows = [
        {
            "name": "王小明",
            "mobile": "+86 138 1234 5678",
            "email": "wxm@13812345678.cn",
            "cid": i,
            "note": f"身份证 {ID_1990} 卡 4111-1111-1111-1111",
            "json": {"tel": ["１３８１２３４５６７８"]},
        }
        for i in range(3)
    ]
    assert_clean([masking.apply(row) for row in rows])
