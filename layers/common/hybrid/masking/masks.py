"""Display masks in the usual Chinese forms, keyed pseudonyms, and masking of free text.

Every mask reads the value through :func:`~hybrid.masking.detect.normalise`, so full-width
digits and separators come out as ASCII digits and stars. The masked forms are chosen so that
no detector fires on them (stars break digit runs), which is what lets the egress scanner pass
them:

- phone: ``138****5678``, the first 3 and last 4 of the 11 national digits (``+86 138****5678``
  with a country prefix);
- ID number: ``110105********123X``, the first 6 and last 4 characters around 8 stars;
- bank card: ``6222 **** **** 1234``, the first 4 and last 4 digits, in this shape whatever
  the card's length;
- email: ``z***@example.com``, the local part's first character and ``***``;
- name: ``张*``, ``张**``, ``欧阳**``: the surname (a compound surname stays whole in names of
  three or more characters), one star per other character;
- pseudonym: ``psd_`` and 20 lowercase base32 characters of HMAC-SHA256 under a key and a
  namespace.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable

from hybrid.masking.detect import PiiKind, Span, find_pii_with_view, is_mobile, normalise
from hybrid.masking.errors import MaskingPolicyError

_NON_DIGITS_RE = re.compile(r"[^0-9]")
_NON_ALNUM_RE = re.compile(r"[^0-9A-Za-z]")
_STARS = "****"
_MIN_HIDDEN = 4
_MIN_CARD_DIGITS = 13
_MIN_KEY_BYTES = 16
_PSEUDONYM_PREFIX = "psd_"
_PSEUDONYM_CHARS = 20
_NAMESPACE_LABEL = b"hybrid.masking.pseudonym/"
# Passes of display masks over free text before spans that still match are starred outright.
_MAX_MASK_PASSES = 3

_COMPOUND_SURNAME_PAIRS = (
    "欧阳司马上官夏侯诸葛东方皇甫尉迟公孙慕容令狐长孙宇文司徒司空轩辕端木南宫西门独孤"
    "百里呼延万俟闻人赫连澹台公羊公冶宗政濮阳淳于单于太叔申屠仲孙钟离鲜于闾丘亓官司寇"
    "子车颛孙巫马公西漆雕乐正壤驷公良拓跋夹谷宰父谷梁段干东郭南门羊舌微生梁丘左丘东门"
    "第五"
)
COMPOUND_SURNAMES = frozenset(
    _COMPOUND_SURNAME_PAIRS[i : i + 2] for i in range(0, len(_COMPOUND_SURNAME_PAIRS), 2)
)


def _keep_ends(chars: str, head: int, tail: int) -> str:
    """``chars`` with all but the first ``head`` and last ``tail`` starred, or all of it
    starred when fewer than four would stay hidden."""
    hidden = len(chars) - head - tail
    if hidden >= _MIN_HIDDEN:
        return chars[:head] + "*" * hidden + chars[len(chars) - tail :]
    return "*" * len(chars) if chars else _STARS


def mask_phone(value: str) -> str:
    """``138****5678``; a ``+86``/``0086``/``86`` prefix is kept as written, then a space
    (``+86 138****5678``). Numbers of another length (landlines) keep 3 and 4 digits the same
    way when at least 4 stay hidden; a value without digits becomes ``****``."""
    view = normalise(value).strip()
    if not view:
        return value
    digits = _NON_DIGITS_RE.sub("", view)
    for prefix in ("86", "0086"):
        national = digits[len(prefix) :]
        if digits.startswith(prefix) and is_mobile(national):
            plus = "+" if view.startswith("+") else ""
            return f"{plus}{prefix} {national[:3]}****{national[-4:]}"
    return _keep_ends(digits, 3, 4)


def mask_id_card(value: str) -> str:
    """``110105********1234``: the first 6 and last 4 characters (check ``X`` upper-cased)."""
    if not value.strip():
        return value
    return _keep_ends(_NON_ALNUM_RE.sub("", normalise(value)).upper(), 6, 4)


def mask_bank_card(value: str) -> str:
    """``6222 **** **** 1234`` whatever the card's length (the length is not revealed);
    fewer than 13 digits are all starred."""
    if not value.strip():
        return value
    digits = _NON_DIGITS_RE.sub("", normalise(value))
    if len(digits) >= _MIN_CARD_DIGITS:
        return f"{digits[:4]} **** **** {digits[-4:]}"
    return "*" * len(digits) if digits else _STARS


def mask_email(value: str) -> str:
    """``z***@example.com``: the local part's first character and ``***``; the domain stays.
    A value without ``@`` keeps only its first character."""
    view = normalise(value).strip()
    if not view:
        return value
    local, at, domain = view.rpartition("@")
    if not at:
        return view[:1] + "***"
    return f"{local[:1]}***@{domain}"


def mask_name(value: str) -> str:
    """``张*`` / ``张**`` / ``欧阳**``: the surname stays, one star per other character.

    A compound surname (``欧阳``, ``司马``...) stays whole in names of three or more characters;
    a one-character value becomes ``*``.
    """
    name = value.strip()
    if not name:
        return value
    if len(name) == 1:
        return "*"
    keep = 2 if len(name) > 2 and name[:2] in COMPOUND_SURNAMES else 1
    return name[:keep] + "*" * (len(name) - keep)


def _namespace_key(key: bytes, namespace: str) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) < _MIN_KEY_BYTES:
        raise MaskingPolicyError(f"pseudonym key must be at least {_MIN_KEY_BYTES} bytes")
    label = _NAMESPACE_LABEL + namespace.encode("utf-8", "surrogatepass")
    return hmac.digest(bytes(key), label, "sha256")


def pseudonym(value: str, key: bytes, *, namespace: str) -> str:
    """A stable join key: ``psd_`` and 20 lowercase base32 characters (100 bits) of
    HMAC-SHA256 over ``value`` under a key derived from ``key`` and ``namespace``.

    Equal values give equal pseudonyms under the same key and namespace, and unrelated ones
    under another key or namespace. Give columns that join the same namespace.
    """
    return Pseudonymizer(key, namespace=namespace)(value)


class Pseudonymizer:
    """:func:`pseudonym` with the key and namespace bound (the namespace key derived once)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes, *, namespace: str) -> None:
        self._key = _namespace_key(key, namespace)

    def __call__(self, value: str) -> str:
        digest = hmac.digest(self._key, value.encode("utf-8", "surrogatepass"), "sha256")
        encoded = base64.b32encode(digest)[:_PSEUDONYM_CHARS].decode("ascii").lower()
        return _PSEUDONYM_PREFIX + encoded

    def __repr__(self) -> str:
        return "Pseudonymizer(<key>)"


_SPAN_MASKS: dict[PiiKind, Callable[[str], str]] = {
    "phone": mask_phone,
    "id_card": mask_id_card,
    "bank_card": mask_bank_card,
    "email": mask_email,
}


def _replace(text: str, view: str, spans: list[Span], *, stars_only: bool) -> str:
    parts: list[str] = []
    cursor = 0
    for span in spans:
        parts.append(text[cursor : span.start])
        piece = view[span.start : span.end]
        parts.append("*" * len(piece) if stars_only else _SPAN_MASKS[span.kind](piece))
        cursor = span.end
    parts.append(text[cursor:])
    return "".join(parts)


def mask_pii(text: str) -> str:
    """``text`` with every detected phone, ID number, bank card and email replaced by its
    display mask; the rest of the text is untouched. Returns ``text`` itself when it holds
    no PII.

    The result is detected again until clean, so masks that happen to meet neighbouring digits
    cannot form new PII; after a few passes what still matches is starred outright.
    """
    view, spans = find_pii_with_view(text)
    passes = 0
    while spans:
        passes += 1
        text = _replace(text, view, spans, stars_only=passes > _MAX_MASK_PASSES)
        view, spans = find_pii_with_view(text)
    return text
