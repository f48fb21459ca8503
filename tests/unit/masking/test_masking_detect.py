"""The PII detectors: known valid and invalid examples, full-width digits and separators, and
the boundaries that keep digits inside longer numbers from matching."""

from __future__ import annotations

import sys

import pytest

from hybrid.masking import (
    Span,
    find_bank_cards,
    find_emails,
    find_id_cards,
    find_phones,
    find_pii,
    id_check_char,
    is_id_number,
    luhn_valid,
    normalise,
)
from hybrid.masking.detect import _FOLDS_TO_DIGIT_OR_AT_RE, _fold

FULL_WIDTH = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz@.-_/ ",
    "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ"
    "ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ＠．－＿／\u3000",
)


def id_number(body: str) -> str:
    """``body`` (17 digits) and its ISO 7064 MOD 11-2 check character, derived from the
    standard's definition: weights 2^(17-i) mod 11, and (sum + check) = 1 (mod 11)."""
    total = sum(int(digit) * pow(2, 17 - i, 11) for i, digit in enumerate(body))
    check = (12 - total % 11) % 11
    return body + ("X" if check == 10 else str(check))


def wrong_check(number: str) -> str:
    """The same ID number with any other check character."""
    return number[:17] + ("0" if number[17] != "0" else "1")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_number(body: str) -> str:
    """``body`` and the Luhn digit that completes it."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def luhn_invalid(number: str) -> str:
    """The same card number with its last digit changed so that Luhn fails."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


ID_1990 = id_number("11010519900307123")
ID_WITH_X = "11010519491231002X"  # the GB 11643 sample
UNIONPAY_19 = card_number("622202123456789012")
UNIONPAY_16 = card_number("621700123456789")


def spans_text(text: str, spans: list[Span]) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.kind) for s in spans]


def test_test_helpers_agree_with_published_numbers() -> None:
    assert id_number("11010519491231002") == ID_WITH_X
    assert luhn_ok("4111111111111111")
    assert luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


# -- ID numbers ------------------------------------------------------------------------------


def test_id_number_with_valid_check_digit_and_birth_date_is_found() -> None:
    text = f"身份证号：{ID_1990}，请核对"
    assert spans_text(text, find_id_cards(text)) == [(ID_1990, "id_card")]
    assert is_id_number(ID_1990)
    assert id_check_char(ID_1990[:17]) == ID_1990[17]


@pytest.mark.parametrize("number", [ID_WITH_X, ID_WITH_X.lower()])
def test_id_number_ending_in_x_is_found_in_either_case(number: str) -> None:
    assert spans_text(number, find_id_cards(number)) == [(number, "id_card")]


def test_region_code_is_not_checked_so_an_unassigned_region_still_counts() -> None:
    number = id_number("99999920000229000")
    assert find_id_cards(number) == [Span(0, 18, "id_card")]


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(wrong_check(ID_1990), id="wrong-check-digit"),
        pytest.param(wrong_check(ID_WITH_X), id="wrong-check-x"),
        pytest.param(id_number("11010519900230123"), id="february-30"),
        pytest.param(id_number("11010518991231123"), id="born-before-1900"),
        pytest.param(id_number("11010521990101123"), id="born-in-the-future"),
        pytest.param(id_number("01010519900307123"), id="region-starting-with-0"),
    ],
)
def test_eighteen_digits_that_are_not_a_plausible_id_number_are_not_an_id(number: str) -> None:
    assert find_id_cards(number) == []
    assert not is_id_number(number)


def test_id_number_inside_a_longer_digit_run_is_not_found() -> None:
    assert find_id_cards("9" + ID_1990) == []
    assert find_id_cards(ID_1990 + "5") == []


def test_id_number_with_full_width_digits_and_separators_is_found_and_spans_the_original() -> None:
    spaced = f"{ID_1990[:6]} {ID_1990[6:14]} {ID_1990[14:]}"
    for variant in (ID_1990.translate(FULL_WIDTH), spaced, spaced.translate(FULL_WIDTH)):
        text = f"证件{variant}。"
        assert spans_text(text, find_id_cards(text)) == [(variant, "id_card")]


# -- mobile numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    ["13812345678", "19987654321", "16600001111", "14712345678", "15000000000", "17012345678"],
)
def test_mainland_mobile_number_is_found(phone: str) -> None:
    text = f"电话{phone}转分机"
    assert spans_text(text, find_phones(text)) == [(phone, "phone")]


@pytest.mark.parametrize(
    "written",
    [
        "138 1234 5678",
        "138-1234-5678",
        "138.1234.5678",
        "138/1234/5678",
        "138_1234_5678",
        "138 - 1234 - 5678",
        "１３８１２３４５６７８",
        "１３８　１２３４　５６７８",
        "138－1234－5678",
        "138—1234—5678",
        "138·1234·5678",
        "1 3 8 1 2 3 4 5 6 7 8",
        "138\u200b1234\u200b5678",
    ],
)
def test_mobile_number_with_separators_or_full_width_digits_is_found(written: str) -> None:
    text = f"联系：{written}！"
    assert spans_text(text, find_phones(text)) == [(written, "phone")]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("+8613812345678", "+8613812345678"),
        ("+86 138 1234 5678", "+86 138 1234 5678"),
        ("008613812345678", "008613812345678"),
        ("0086-138-1234-5678", "0086-138-1234-5678"),
        ("8613812345678", "8613812345678"),
        ("（+86）13812345678", "13812345678"),
        ("＋８６　１３８１２３４５６７８", "＋８６　１３８１２３４５６７８"),
    ],
)
def test_mobile_number_with_country_prefix_is_found_with_its_prefix(text: str, found: str) -> None:
    assert spans_text(text, find_phones(text)) == [(found, "phone")]


@pytest.mark.parametrize(
    "text",
    [
        "12812345678",  # 12x is not a mobile range
        "10012345678",
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "513812345678",  # inside a longer run
        "订单号2026113812345678",
        "13812345678901234567890",
        "138 1234    5678",  # four spaces is not a separator
        "138,1234,5678",  # a comma is not a separator
    ],
)
def test_digits_that_are_not_a_mobile_number_are_not_found(text: str) -> None:
    assert find_phones(text) == []


def test_two_mobile_numbers_next_to_each_other_are_both_found() -> None:
    text = "13812345678 13987654321"
    assert spans_text(text, find_phones(text)) == [
        ("13812345678", "phone"),
        ("13987654321", "phone"),
    ]


def test_mobile_number_after_a_year_in_the_same_chunk_is_found() -> None:
    text = "2026 13812345678"
    spans = find_pii(text)
    assert any(s.start <= 5 and s.end >= 16 for s in spans)


# -- bank cards ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        UNIONPAY_16,
        UNIONPAY_19,
        card_number("422222222222"),  # 13 digits
    ],
)
def test_luhn_valid_card_number_is_found(card: str) -> None:
    text = f"卡号:{card};"
    assert spans_text(text, find_bank_cards(text)) == [(card, "bank_card")]
    assert luhn_valid(card)


@pytest.mark.parametrize(
    "written",
    [
        f"{UNIONPAY_19[:4]} {UNIONPAY_19[4:8]} {UNIONPAY_19[8:12]} {UNIONPAY_19[12:16]} "
        f"{UNIONPAY_19[16:]}",
        "4111-1111-1111-1111",
        "4111 1111 1111 1111",
        "４１１１　１１１１　１１１１　１１１１",
        "3782 822463 10005",
    ],
)
def test_card_number_in_groups_or_full_width_is_found(written: str) -> None:
    text = f"卡号 {written}。"
    assert spans_text(text, find_bank_cards(text)) == [(written, "bank_card")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(luhn_invalid("4111111111111111"), id="16-digits-failing-luhn"),
        pytest.param(luhn_invalid(UNIONPAY_19), id="19-digits-failing-luhn"),
        pytest.param(card_number("41111111111"), id="12-digits"),
        pytest.param(card_number("41111111111111111111"), id="21-digits"),
        pytest.param(card_number("011111111111111"), id="leading-zero"),
        pytest.param("7" + "4111111111111111", id="inside-a-longer-run"),
    ],
)
def test_digits_that_are_not_a_card_number_are_not_found(text: str) -> None:
    assert find_bank_cards(text) == []


# -- emails ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["zhang.san@example.com", "li_si+tag@mail.example.com.cn", "13812345678@163.com", "a@b.io"],
)
def test_email_address_is_found(email: str) -> None:
    text = f"邮箱{email}，谢谢"
    assert spans_text(text, find_emails(text)) == [(email, "email")]


def test_full_width_email_address_is_found_over_its_original_characters() -> None:
    written = "zhang.san@example.com".translate(FULL_WIDTH)
    text = f"邮箱：{written}"
    assert spans_text(text, find_emails(text)) == [(written, "email")]


@pytest.mark.parametrize("text", ["z***@example.com", "***@example.com", "user@localhost", "@x.cn"])
def test_masked_or_incomplete_email_is_not_an_email(text: str) -> None:
    assert find_emails(text) == []


def test_email_holding_a_phone_number_is_found_once_as_an_email() -> None:
    text = "13812345678@163.com"
    assert find_pii(text) == [Span(0, len(text), "email")]


# -- normalisation and the combined detector -------------------------------------------------


def test_normalised_view_has_the_same_length_and_ascii_digits() -> None:
    text = "张三 １３８－１２３４—５６７８ ｚ＠ｅｘ．ｃｎ \u200b①²"
    view = normalise(text)
    assert len(view) == len(text)
    assert view == "张三 138-1234-5678 z@ex.cn  12"


def test_unicode_decimal_digits_of_other_scripts_are_read_as_digits() -> None:
    arabic_indic = "١٣٨١٢٣٤٥٦٧٨"
    assert find_phones(arabic_indic) == [Span(0, 11, "phone")]


def test_all_kinds_in_one_text_are_found_in_order() -> None:
    text = f"张三，{ID_1990}，电话 138 1234 5678，卡 {UNIONPAY_16}，邮箱 zs@example.com"
    assert [s.kind for s in find_pii(text)] == ["id_card", "phone", "bank_card", "email"]


def test_text_without_pii_yields_no_spans() -> None:
    for text in ("", "北京市朝阳区建国路88号", "2026-11-20 08:00:00", "订单 A-1001 共 99.00 元"):
        assert find_pii(text) == []


def test_every_cjk_ideograph_folds_to_itself_so_normalise_may_skip_them() -> None:
    changed = [hex(code) for code in range(0x4E00, 0xA000) if _fold(chr(code)) != chr(code)]
    assert changed == []


def test_normalise_folds_exactly_as_the_fold_of_each_character() -> None:
    text = "".join(chr(code) for code in range(0x80, 0x3400) if not 0xD800 <= code <= 0xDFFF)
    text += "中文１２３＠ｅｘ．ｃｎ\uff0c\uff1a\u3000" + "".join(map(chr, range(0xF900, 0x10000)))
    text = text.replace("\ud800", "")
    assert normalise(text) == "".join(_fold(char) for char in text)


def test_every_character_that_folds_to_a_digit_or_at_sign_passes_the_prefilter() -> None:
    missed = [
        hex(code)
        for code in range(128, sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF
        and _fold(chr(code)) in set("0123456789@")
        and _FOLDS_TO_DIGIT_OR_AT_RE.match(chr(code)) is None
    ]
    assert missed == []
