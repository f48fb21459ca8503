"""Page tokens: sealed offsets bound to one query; forged, altered or foreign ones refused."""

from __future__ import annotations

import base64
import json

import pytest

from connector.pagetoken import PageTokenError, PageTokens, query_hash
from hybrid.signing import new_webhook_secret

SECRET = new_webhook_secret()
BOUND = query_hash("erp", "SELECT id FROM t WHERE id > $1", [5])


def test_a_token_round_trips_its_offset() -> None:
    tokens = PageTokens(SECRET)
    for offset in (0, 1, 300, 10**9):
        assert tokens.open(tokens.seal(offset, BOUND), BOUND) == offset


def test_the_binding_covers_source_sql_and_params() -> None:
    base = query_hash("erp", "SELECT 1", [1])
    assert base == query_hash("erp", "SELECT 1", [1])
    assert base != query_hash("crm", "SELECT 1", [1])
    assert base != query_hash("erp", "SELECT 1 ", [1])
    assert base != query_hash("erp", "SELECT 1", [2])
    assert base != query_hash("erp", "SELECT 1", ["1"])


def test_a_token_for_another_query_is_refused() -> None:
    tokens = PageTokens(SECRET)
    token = tokens.seal(300, BOUND)
    other = query_hash("erp", "SELECT id FROM t WHERE id > $1", [6])
    with pytest.raises(PageTokenError, match="another query"):
        tokens.open(token, other)


def test_a_token_of_another_connector_is_refused() -> None:
    token = PageTokens(new_webhook_secret()).seal(300, BOUND)
    with pytest.raises(PageTokenError, match="not issued"):
        PageTokens(SECRET).open(token, BOUND)


def test_an_altered_offset_is_refused() -> None:
    tokens = PageTokens(SECRET)
    prefix, _payload, mac = tokens.seal(300, BOUND).split(".")
    forged_payload = json.dumps({"o": 0, "q": BOUND}, separators=(",", ":")).encode()
    forged = f"{prefix}.{base64.urlsafe_b64encode(forged_payload).rstrip(b'=').decode()}.{mac}"
    with pytest.raises(PageTokenError):
        tokens.open(forged, BOUND)


@pytest.mark.parametrize(
    "token", ["", "garbage", "pt1..", "pt1.e30.", "pt2.e30.AAAA", "pt1.!!!.AAAA", "x" * 600]
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(PageTokenError):
        PageTokens(SECRET).open(token, BOUND)


def test_the_mac_key_is_not_the_secret() -> None:
    from hybrid.signing import decode_secret

    tokens = PageTokens(SECRET)
    assert tokens._key != decode_secret(SECRET)


def test_negative_offsets_cannot_be_sealed() -> None:
    with pytest.raises(ValueError, match="negative"):
        PageTokens(SECRET).seal(-1, BOUND)
