"""Display masks (exact output), pseudonyms, and masking of free text."""

from __future__ import annotations

import re

import pytest

from hybrid.masking import (
    MaskingPolicyError,
    Pseudonymizer,
    find_pii,
    mask_bank_card,
    mask_email,
    mask_id_card,
    mask_name,
    mask_phone,
    mask_pii,
    pseudonym,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138 1234 5678", "138****5678"),
        ("１３８－１２３４－５６７８", "138****5678"),
        ("+86 138 1234 5678", "+86 138****5678"),
        ("008613812345678", "0086 138****5678"),
        ("8613812345678", "86 138****5678"),
        ("010-12345678", "010****5678"),
        ("12345", "*****"),
        ("未知", "****"),
        ("", ""),
    ],
)
def test_phone_mask_keeps_first_three_and_last_four_digits(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("110105199003071239", "110105********1239"),
        ("11010519491231002x", "110105********002X"),
        ("１１０１０５ １９４９１２３１ ００２Ｘ", "110105********002X"),
        ("110105491231002", "110105*****1002"),
        ("12345", "*****"),
        ("", ""),
    ],
)
def test_id_card_mask_keeps_first_six_and_last_four(value: str, masked: str) -> None:
    assert mask_id_card(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("6222021234567890128", "6222 **** **** 0128"),
        ("4111 1111 1111 1111", "4111 **** **** 1111"),
        ("378282246310005", "3782 **** **** 0005"),
        ("４１１１－１１１１－１１１１－１１１１", "4111 **** **** 1111"),
        ("123456789012", "************"),
        ("无", "****"),
        ("", ""),
    ],
)
def test_bank_card_mask_keeps_first_four_and_last_four_in_one_shape(
    value: str, masked: str
) -> None:
    assert mask_bank_card(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("zhangsan@example.com", "z***@example.com"),
        ("z@example.com", "z***@example.com"),
        ("ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "z***@example.com"),
        ("@example.com", "***@example.com"),
        ("not-an-email", "n***"),
        ("", ""),
    ],
)
def test_email_mask_keeps_first_character_and_domain(value: str, masked: str) -> None:
    assert mask_email(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳娜娜", "欧阳**"),
        ("欧阳修", "欧阳*"),
        ("司马光", "司马*"),
        ("欧阳", "欧*"),
        ("张", "*"),
        (" 李四 ", "李*"),
        ("Zhang San", "Z********"),
        ("", ""),
    ],
)
def test_name_mask_keeps_the_surname(value: str, masked: str) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    "masked",
    [
        "138****5678",
        "+86 138****5678",
        "110105********1239",
        "110105********002X",
        "6222 **** **** 0128",
        "z***@example.com",
        "张*",
    ],
)
def test_masked_forms_hold_nothing_a_detector_fires_on(masked: str) -> None:
    assert find_pii(masked) == []


def test_pseudonym_is_stable_for_one_key_and_namespace() -> None:
    first = pseudonym("cust-1001", KEY, namespace="customer")
    assert first == pseudonym("cust-1001", KEY, namespace="customer")
    assert re.fullmatch(r"psd_[a-z2-7]{20}", first)


def test_pseudonym_differs_across_keys_namespaces_and_values() -> None:
    base = pseudonym("cust-1001", KEY, namespace="customer")
    assert pseudonym("cust-1001", OTHER_KEY, namespace="customer") != base
    assert pseudonym("cust-1001", KEY, namespace="order") != base
    assert pseudonym("cust-1002", KEY, namespace="customer") != base


def test_pseudonymizer_matches_pseudonym_and_hides_its_key() -> None:
    bound = Pseudonymizer(KEY, namespace="customer")
    assert bound("张三") == pseudonym("张三", KEY, namespace="customer")
    assert repr(bound) == "Pseudonymizer(<key>)"


def test_pseudonym_key_shorter_than_16_bytes_is_refused() -> None:
    with pytest.raises(MaskingPolicyError, match="16 bytes"):
        pseudonym("x", b"short", namespace="n")


def test_free_text_keeps_its_words_and_loses_its_pii() -> None:
    text = (
        "客户张三，电话 １３８ １２３４ ５６７８，身份证110105199003071239，邮箱 zs@example.com。"
    )
    assert mask_pii(text) == (
        "客户张三，电话 138****5678，身份证110105********1239，邮箱 z***@example.com。"
    )


def test_free_text_without_pii_is_returned_as_is() -> None:
    text = "订单 A-1001 共 99.00 元"
    assert mask_pii(text) is text


def test_card_number_whose_tail_reads_as_a_phone_number_is_masked_whole_as_a_card() -> None:
    body = "622202131381234567"  # groups of four end in 1381 2345 67?, a mobile number's shape
    card = next(body + d for d in "0123456789" if luhn_ok(body + d))
    written = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
    assert mask_pii(f"卡号 {written}") == f"卡号 6222 **** **** {card[-4:]}"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0
