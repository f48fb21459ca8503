"""PII detectors: mainland mobile numbers, resident ID numbers, bank cards and emails.

Detection runs on :func:`normalise`'s view of the text, which has the same length as the text,
so every :class:`Span` indexes the original string and masking replaces the original characters
(full-width digits, odd separators and all).

Digit-based PII is found in *digit chunks*: runs of digits joined by at most three separator
characters (space, ``-``, ``.``, ``/``, ``_`` after normalisation). A match is always a whole
sequence of groups of one chunk, so digits inside a longer digit run never match, while any
grouping (``138 1234 5678``, ``6222-0212-3456-7890``) does. Overlapping candidates merge into one
span of the longest one's kind (ties: ID number, phone, bank card, email), so that masking it
hides every digit of each of them.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from datetime import date
from typing import Literal, NamedTuple

PiiKind = Literal["phone", "id_card", "bank_card", "email"]
PII_KINDS: tuple[PiiKind, ...] = ("id_card", "phone", "bank_card", "email")
_RANK = {kind: rank for rank, kind in enumerate(PII_KINDS)}


class Span(NamedTuple):
    """Where PII was found: ``text[start:end]`` holds one value of ``kind``."""

    start: int
    end: int
    kind: PiiKind


# Separators that NFKC leaves alone (or maps to something that is not ASCII).
_EXTRA_FOLDS = {
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58", "-"),
    **dict.fromkeys("\u00b7\u2022\u2027\u2219\u30fb", "."),
}
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Zs"})


def _fold(char: str) -> str:
    """One character of the normalised view: always exactly one character."""
    extra = _EXTRA_FOLDS.get(char)
    if extra is not None:
        return extra
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) == 1 and folded.isascii():
        return folded
    if char.isdecimal():
        return str(unicodedata.decimal(char))
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return " "
    return char


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table that folds each character once, on first sight."""

    __slots__ = ()

    def __missing__(self, code: int) -> str:
        folded = _fold(chr(code))
        self[code] = folded
        return folded


_FOLD_TABLE = _FoldTable({code: chr(code) for code in range(128)})


# Characters that may fold to something else: neither ASCII nor a CJK unified ideograph (a test
# checks that every ideograph folds to itself). Chinese text is mostly ideographs, so folding
# only these is several times faster than translating every character.
_MAY_FOLD_RE = re.compile(r"[^\x00-\x7f\u4e00-\u9fff]")


def _fold_match(match: re.Match[str]) -> str:
    return _FOLD_TABLE[ord(match[0])]


def normalise(text: str) -> str:
    """The view detectors read: full-width and other Unicode digits and letters as ASCII,
    dash- and dot-like characters as ``-`` and ``.``, invisible characters as spaces.

    The result has the same length as ``text``, character for character.
    """
    if text.isascii():
        return text
    return _MAY_FOLD_RE.sub(_fold_match, text)


# Every character that folds to an ASCII digit or "@" (a test checks this against _fold over all
# of Unicode): text without one holds no PII, and need not be normalised to find that out.
_FOLDS_TO_DIGIT_OR_AT_RE = re.compile(
    r"[\d@\u00b2\u00b3\u00b9\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u24ea\ufe6b\uff20]"
)
_FOLDS_TO_DIGIT_RE = re.compile(
    r"[\d\u00b2\u00b3\u00b9\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u24ea]"
)
_FOLDS_TO_AT_RE = re.compile(r"[@\ufe6b\uff20]")
# A chunk: digit groups (an X may end one, or stand alone) joined by 1-3 separators. The
# lookahead skips, inside the regex engine, chunks too short to hold 11 digits: any chunk that
# long starts with 11 characters of its alphabet, and no later group of a shorter chunk can pass
# where its start failed. The lookbehind keeps a match from starting inside a digit run.
_CHUNK_RE = re.compile(
    r"(?<![0-9])(?=[0-9][0-9Xx ./_-]{10})"
    r"[0-9]+(?:[Xx](?![0-9]))?"
    r"(?:[ ./_-]{1,3}(?:[0-9]+(?:[Xx](?![0-9]))?|[Xx](?![0-9])))*"
)
_GROUP_RE = re.compile(r"[0-9]+[Xx]?|[Xx]")
_ID_RE = re.compile(r"[1-9][0-9]{16}[0-9Xx]")
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+*-])([A-Za-z0-9._%+*-]+)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_MASKED_LOCAL_RE = re.compile(r"[^*]?\*+")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
# Luhn doubles every second digit from the right and adds the two digits of the product.
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")
_MIN_DIGITS = 11
_MAX_DIGITS = 19
_ID_LENGTH = 18
_EARLIEST_BIRTH = date(1900, 1, 1)
_NOT_DIGITS = str.maketrans("", "", "Xx ./_-")


def is_mobile(digits: str) -> bool:
    """Whether ``digits`` (ASCII, no prefix) is an 11-digit mainland mobile number."""
    return (
        len(digits) == _MIN_DIGITS
        and digits[0] == "1"
        and digits[1] in "3456789"
        and digits.isascii()
        and digits.isdigit()
    )


def luhn_valid(digits: str) -> bool:
    """Whether the ASCII digit string passes the Luhn check."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    backwards = digits[::-1]
    kept_and_doubled = backwards[0::2] + backwards[1::2].translate(_LUHN_DOUBLED)
    return sum(map(int, kept_and_doubled)) % 10 == 0


def id_check_char(body: str) -> str:
    """The ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``) of 17 ASCII digits."""
    if len(body) != len(_ID_WEIGHTS):
        raise ValueError("an ID number body has 17 digits")
    return _ID_CHECK_CHARS[sum(map(operator.mul, map(int, body), _ID_WEIGHTS)) % 11]


def is_id_number(value: str) -> bool:
    """Whether ``value`` is an 18-character resident ID number with a valid check character
    and a plausible birth date (1900-01-01 up to today). No region-code table is consulted.
    """
    if _ID_RE.fullmatch(value) is None or id_check_char(value[:17]) != value[17].upper():
        return False
    try:
        birth = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return _EARLIEST_BIRTH <= birth <= date.today()


def _classify(digits: str, view: str, start: int, end: int, found: list[Span]) -> None:
    """Append the candidates that the window ``view[start:end]`` with ``digits`` is."""
    length = len(digits)
    if length == _MIN_DIGITS:
        if is_mobile(digits):
            found.append(Span(start, end, "phone"))
    elif (length == 13 and digits.startswith("86") and is_mobile(digits[2:])) or (
        length == 15 and digits.startswith("0086") and is_mobile(digits[4:])
    ):
        plus = start > 0 and view[start - 1] == "+"
        found.append(Span(start - 1 if plus else start, end, "phone"))
    if length == _ID_LENGTH and is_id_number(digits):
        found.append(Span(start, end, "id_card"))
    if length >= 13 and digits[0] != "0" and luhn_valid(digits):
        found.append(Span(start, end, "bank_card"))


def _digit_candidates(view: str) -> list[Span]:
    found: list[Span] = []
    for chunk in _CHUNK_RE.finditer(view):
        chunk_start, chunk_end = chunk.span()
        if chunk_end - chunk_start < _MIN_DIGITS:
            continue
        text = chunk[0]
        if chunk_end - chunk_start <= _MAX_DIGITS and text.isdigit():
            _classify(text, view, chunk_start, chunk_end, found)
            continue
        if len(text.translate(_NOT_DIGITS)) < _MIN_DIGITS:
            continue
        groups = []
        for match in _GROUP_RE.finditer(view, chunk_start, chunk_end):
            group_digits = match[0].rstrip("Xx")
            start = match.start()
            groups.append((group_digits, start, start + len(group_digits), match.end()))
        for first in range(len(groups)):
            digits = ""
            for digits_of_group, _start, digits_end, end in groups[first:]:
                digits += digits_of_group
                if len(digits) > _MAX_DIGITS:
                    break
                if len(digits) >= _MIN_DIGITS and digits_of_group:
                    _classify(digits, view, groups[first][1], digits_end, found)
                if end > digits_end:
                    # A trailing X ends the window: it can only be an ID's check character.
                    if len(digits) == _ID_LENGTH - 1 and is_id_number(digits + "X"):
                        found.append(Span(groups[first][1], end, "id_card"))
                    break
    return found


def _email_candidates(view: str) -> list[Span]:
    if "@" not in view:
        return []
    return [
        Span(match.start(), match.end(), "email")
        for match in _EMAIL_RE.finditer(view)
        if _MASKED_LOCAL_RE.fullmatch(match[1]) is None
    ]


def _resolve(candidates: list[Span]) -> list[Span]:
    """Non-overlapping spans in text order: overlapping candidates merge into one span that
    covers them all, of the kind of the longest (ties: :data:`PII_KINDS` order)."""
    if len(candidates) <= 1:
        return candidates
    merged: list[Span] = []
    start = end = -1
    best: Span | None = None
    for span in sorted(set(candidates)):
        if best is not None and span.start < end:
            end = max(end, span.end)
            if (span.start - span.end, _RANK[span.kind]) < (
                best.start - best.end,
                _RANK[best.kind],
            ):
                best = span
            continue
        if best is not None:
            merged.append(Span(start, end, best.kind))
        start, end, best = span.start, span.end, span
    if best is not None:
        merged.append(Span(start, end, best.kind))
    return merged


def find_pii_with_view(text: str) -> tuple[str, list[Span]]:
    """:func:`find_pii`, and the normalised view the spans were found in (``text`` itself when
    it cannot hold PII)."""
    if _FOLDS_TO_DIGIT_OR_AT_RE.search(text) is None:
        return text, []
    # Fewer than 11 digits and no "@": too few for any number this module finds, no email.
    if _FOLDS_TO_AT_RE.search(text) is None and _FOLDS_TO_DIGIT_RE.subn("", text)[1] < _MIN_DIGITS:
        return text, []
    view = normalise(text)
    return view, _resolve(_digit_candidates(view) + _email_candidates(view))


def find_pii(text: str) -> list[Span]:
    """Every PII value in ``text``, as non-overlapping spans in text order."""
    return find_pii_with_view(text)[1]


def _find_kind(text: str, kind: PiiKind) -> list[Span]:
    view = normalise(text)
    candidates = _email_candidates(view) if kind == "email" else _digit_candidates(view)
    return _resolve([span for span in candidates if span.kind == kind])


def find_phones(text: str) -> list[Span]:
    """Mainland mobile numbers: ``1[3-9]`` and 9 digits, optionally after ``+86``, ``0086`` or
    ``86`` (then part of the span)."""
    return _find_kind(text, "phone")


def find_id_cards(text: str) -> list[Span]:
    """18-character resident ID numbers that pass :func:`is_id_number`."""
    return _find_kind(text, "id_card")


def find_bank_cards(text: str) -> list[Span]:
    """13 to 19 digits, not starting with 0, that pass the Luhn check."""
    return _find_kind(text, "bank_card")


def find_emails(text: str) -> list[Span]:
    """Email addresses with an ASCII local part and domain; a masked local part (one
    character and stars, as :func:`hybrid.masking.masks.mask_email` writes) does not count."""
    return _find_kind(text, "email")
