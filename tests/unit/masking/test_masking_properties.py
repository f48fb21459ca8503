"""Properties: generated PII is always found however it is written, masked output never holds a
checksum-valid ID, a Luhn-valid card or a mobile number, and a Faker zh_CN corpus goes through
a policy and the egress scanner without a raw value left."""

from __future__ import annotations

import json
import random
import re
from datetime import date
from typing import Any

from faker import Faker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid.masking import (
    MaskingPolicy,
    assert_clean,
    find_bank_cards,
    find_id_cards,
    find_phones,
    find_pii,
    is_id_number,
    normalise,
    scan,
)

KEY = b"property-test-key-32-bytes-long!"
FULL_WIDTH = str.maketrans(
    "0123456789Xx@.abcdefghijklmnopqrstuvwxyz",
    "０１２３４５６７８９Ｘｘ＠．ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ",
)
SEPARATORS = [" ", "\u3000", "-", "－", "—", ".", "．", "·", "/", "／", "_", "＿"]
NON_DIGIT_TEXT = st.text(
    alphabet=st.sampled_from(
        list("客户电话号码是的请联系我们地址北京市朝阳区卡身份证邮箱")
        + list("abcxyzXABC ,;:!?()[]，。：；（）ａｂｃ")
        + SEPARATORS
    ),
    max_size=12,
)
ANY_TEXT = st.text(
    alphabet=st.sampled_from(list("0123456789０１２３４５６７８９Xx+@.abc客户电话 ") + SEPARATORS),
    max_size=40,
)
PHONE_RE = re.compile(r"1[3-9][0-9]{9}")


# -- independent reference checks, used to judge the output -----------------------------------


def id_number(body: str) -> str:
    total = sum(int(digit) * pow(2, 17 - i, 11) for i, digit in enumerate(body))
    check = (12 - total % 11) % 11
    return body + ("X" if check == 10 else str(check))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# -- generators ------------------------------------------------------------------------------

digit = st.sampled_from("0123456789")
mobiles = st.builds(
    lambda second, rest: "1" + second + "".join(rest),
    st.sampled_from("3456789"),
    st.lists(digit, min_size=9, max_size=9),
)
id_numbers = st.builds(
    lambda first, region, born, seq: id_number(
        first + "".join(region) + born.strftime("%Y%m%d") + "".join(seq)
    ),
    st.sampled_from("123456789"),
    st.lists(digit, min_size=5, max_size=5),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    st.lists(digit, min_size=3, max_size=3),
)


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.sampled_from("123456789")) + "".join(
        draw(st.lists(digit, min_size=length - 2, max_size=length - 2))
    )
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@st.composite
def written(draw: st.DrawFn, value: str) -> str:
    """``value`` with random characters full-width, X in either case, and runs of one to three
    separators between random characters."""
    out = []
    for i, char in enumerate(value):
        if char == "X" and draw(st.booleans()):
            char = "x"
        if draw(st.booleans()):
            char = char.translate(FULL_WIDTH)
        out.append(char)
        if i < len(value) - 1 and draw(st.integers(0, 4)) == 0:
            out.append("".join(draw(st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=3))))
    return "".join(out)


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str, str, int, int]:
    """(kind, value, text, start, end): a valid value written at ``text[start:end]``."""
    kind = draw(st.sampled_from(["phone", "id_card", "bank_card"]))
    value = draw({"phone": mobiles, "id_card": id_numbers, "bank_card": cards()}[kind])
    shown = draw(written(value))
    before, after = draw(NON_DIGIT_TEXT), draw(NON_DIGIT_TEXT)
    if kind == "phone" and draw(st.booleans()):
        before += draw(st.sampled_from(["+86", "+86 ", "0086", "86-", "＋８６", "(+86)"]))
    return kind, value, before + shown + after, len(before), len(before) + len(shown)


def digits_of(text: str) -> str:
    return re.sub(r"[^0-9]", "", normalise(text))


def assert_holds_no_pii(text: str) -> None:
    """The detectors find nothing, and neither do the independent checks over every maximal
    digit run of the normalised text."""
    assert find_pii(text) == []
    assert find_phones(text) == find_id_cards(text) == find_bank_cards(text) == []
    for run in re.findall(r"[0-9]+[Xx]?", normalise(text)):
        assert not (len(run) == 11 and PHONE_RE.fullmatch(run)), "mobile number left"
        assert not (len(run) == 18 and is_id_number(run)), "ID number left"
        digits = run.rstrip("Xx")  # a trailing X belongs to an ID number, never to a card
        assert not (13 <= len(digits) <= 19 and digits[0] != "0" and luhn_ok(digits)), "card left"


DETECT_ALL = MaskingPolicy({}, pseudonym_key=KEY)


@settings(max_examples=300, deadline=None)
@given(planted())
def test_generated_pii_is_always_found_and_masked_away(
    case: tuple[str, str, str, int, int],
) -> None:
    _kind, value, text, start, end = case
    spans = find_pii(text)
    assert any(s.start <= start and s.end >= end for s in spans), (text, spans)
    masked = DETECT_ALL.apply({"free_text": text})["free_text"]
    assert_holds_no_pii(masked)
    assert value not in digits_of(masked)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ANY_TEXT, planted().map(lambda case: case[2])), min_size=1, max_size=4))
def test_detect_leaves_no_checksum_valid_pii_in_any_text(parts: list[str]) -> None:
    text = "".join(parts)
    masked = DETECT_ALL.apply({"free_text": text, "as_int": int(digits_of(text) or "0")})
    for value in masked.values():
        assert_holds_no_pii(str(value))
    assert scan([masked]) == []


# -- Faker zh_CN corpus ----------------------------------------------------------------------

FAKE = Faker("zh_CN")
CORPUS_POLICY = MaskingPolicy.from_config(
    {
        "unlisted": "detect",
        "columns": {
            "name": "mask_name",
            "mobile": "mask_phone",
            "id_no": "mask_id_card",
            "card_no": "mask_bank_card",
            "email": "mask_email",
            "address": "drop",
            "customer_id": {"policy": "pseudonym", "namespace": "customer"},
        },
    },
    pseudonym_key=KEY,
)


def variant(value: str, rng: random.Random) -> str:
    """As typed by a person: as is, full-width, or in groups with a separator."""
    choice = rng.randrange(4)
    if choice == 0:
        return value
    if choice == 1:
        return value.translate(FULL_WIDTH)
    sep = rng.choice(SEPARATORS)
    grouped = sep.join(value[i : i + 4] for i in range(0, len(value), 4))
    return grouped.translate(FULL_WIDTH) if choice == 3 else grouped


def corpus(seed: int, size: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of fake customers, and every raw value in them (as written) that must not leave."""
    FAKE.seed_instance(seed)
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    raw: list[str] = []
    for i in range(size):
        person = {
            "name": FAKE.name(),
            "mobile": FAKE.phone_number(),
            "id_no": FAKE.ssn(),
            "card_no": FAKE.credit_card_number(),
            "email": FAKE.email(),
            "address": FAKE.address(),
        }
        shown = {key: variant(value, rng) for key, value in person.items()}
        shown["name"], shown["email"], shown["address"] = (
            person["name"],
            rng.choice([person["email"], person["email"].translate(FULL_WIDTH)]),
            person["address"],
        )
        remark = (
            f"客户{shown['mobile']}，证件{variant(person['id_no'], rng)}，"
            f"卡{variant(person['card_no'], rng)}，邮箱{shown['email']}"
        )
        rows.append(
            {
                **shown,
                "customer_id": f"C{seed}-{i}",
                "mobile_int": int(person["mobile"]),
                "remark": remark,
                "extra": {"contacts": [{"tel": shown["mobile"]}, person["email"]]},
                "at": None,
            }
        )
        raw.extend(person.values())
        raw.extend(shown.values())
    return rows, raw


def leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [str(key), *leaves(item)]]
    if isinstance(value, list | tuple):
        return [text for item in value for text in leaves(item)]
    return [str(value)]


def test_faker_values_are_the_kinds_the_detectors_look_for() -> None:
    rows, _raw = corpus(seed=1, size=50)
    for row in rows:
        assert find_id_cards(row["id_no"])
        assert find_phones(row["mobile"])
        assert find_bank_cards(row["card_no"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_faker_corpus_leaves_masked_with_no_raw_value_and_passes_egress(seed: int) -> None:
    rows, raw = corpus(seed, size=20)
    out = [CORPUS_POLICY.apply(row) for row in rows]
    assert_clean(out)
    dumped = json.dumps(out, ensure_ascii=False)
    leaf_digits = [digits_of(leaf) for leaf in leaves(out)]
    for value in raw:
        assert value not in dumped
        digits = digits_of(value)
        if len(digits) >= 11:
            assert not any(digits in leaf for leaf in leaf_digits)
    assert all("address" not in row for row in out)
