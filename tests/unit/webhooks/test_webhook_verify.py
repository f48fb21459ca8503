"""Standard Webhooks verification: the spec's known-answer vector, the reference implementation
as an oracle, bit flips, the tolerance window, rotation and fuzzed headers."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid import webhooks
from hybrid.errors import AuthenticationError
from hybrid.webhooks import WebhookMessage, WebhookVerificationError

# Known-answer vector published with the Standard Webhooks reference implementation:
# standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# `test_sign_function` (commit 33d368b20c5543357f4f27fd13bed0703b8c5204); the same secret, id and
# payload are the DEFAULT_* constants of that file, and `test_invalid_signature_raises_error`
# uses the same digest with its last character changed as a non-matching signature.
KAT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KAT_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
KAT_TIMESTAMP = 1614265330
KAT_BODY = b'{"test": 2432232314}'
KAT_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
KAT_WRONG_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="


def kat_headers(signature: str = KAT_SIGNATURE) -> dict[str, str]:
    return {
        "webhook-id": KAT_ID,
        "webhook-timestamp": str(KAT_TIMESTAMP),
        "webhook-signature": signature,
    }


def test_sign_matches_the_published_vector() -> None:
    assert webhooks.sign(KAT_SECRET, KAT_ID, KAT_TIMESTAMP, KAT_BODY) == KAT_SIGNATURE
    # The prefix is optional, as in the reference implementation.
    unprefixed = KAT_SECRET.removeprefix("whsec_")
    assert webhooks.sign(unprefixed, KAT_ID, KAT_TIMESTAMP, KAT_BODY) == KAT_SIGNATURE


def test_verify_accepts_the_published_vector() -> None:
    message = webhooks.verify(kat_headers(), KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)
    assert message == WebhookMessage(id=KAT_ID, timestamp=KAT_TIMESTAMP)


def test_verify_rejects_the_published_wrong_signature() -> None:
    with pytest.raises(WebhookVerificationError, match=r"^invalid webhook signature$"):
        webhooks.verify(kat_headers(KAT_WRONG_SIGNATURE), KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)


def test_agrees_with_the_reference_implementation() -> None:
    from standardwebhooks import Webhook

    secret = webhooks.new_webhook_secret()
    body = '{"name": "张三", "n": 1}'.encode()
    timestamp = int(time.time())
    reference = Webhook(secret)
    expected = reference.sign(
        "msg_1", datetime.fromtimestamp(timestamp, tz=timezone.utc), body.decode()
    )
    assert webhooks.sign(secret, "msg_1", timestamp, body) == expected
    headers = webhooks.signed_headers(secret, "msg_1", timestamp, body)
    assert reference.verify(body, headers, json_parse=False) is None
    assert webhooks.verify(headers, body, [secret]).id == "msg_1"


def test_verification_error_is_an_authentication_error() -> None:
    assert issubclass(WebhookVerificationError, AuthenticationError)


def test_new_secret_shape() -> None:
    secret = webhooks.new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert webhooks.new_webhook_secret() != secret


def _flip_bit(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def test_every_single_bit_flip_of_the_body_fails() -> None:
    for bit in range(len(KAT_BODY) * 8):
        body = _flip_bit(KAT_BODY, bit)
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(kat_headers(), body, [KAT_SECRET], now=KAT_TIMESTAMP)


def test_every_single_bit_flip_of_the_id_fails() -> None:
    raw = KAT_ID.encode()
    for bit in range(len(raw) * 8):
        headers = kat_headers()
        headers["webhook-id"] = _flip_bit(raw, bit).decode("latin-1")
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(headers, KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)


def test_every_single_bit_flip_of_the_timestamp_fails() -> None:
    raw = str(KAT_TIMESTAMP).encode()
    for bit in range(len(raw) * 8):
        headers = kat_headers()
        headers["webhook-timestamp"] = _flip_bit(raw, bit).decode("latin-1")
        # The clock follows the flipped value when it is still a number, so only the
        # signature can reject it.
        flipped = headers["webhook-timestamp"]
        now = float(flipped) if flipped.isascii() and flipped.isdigit() else KAT_TIMESTAMP
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(headers, KAT_BODY, [KAT_SECRET], now=now)


def test_every_single_bit_flip_of_the_signature_fails() -> None:
    digest = base64.b64decode(KAT_SIGNATURE.removeprefix("v1,"))
    for bit in range(len(digest) * 8):
        signature = "v1," + base64.b64encode(_flip_bit(digest, bit)).decode()
        with pytest.raises(WebhookVerificationError):
            webhooks.verify(kat_headers(signature), KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_timestamp_inside_the_tolerance_passes(offset: int) -> None:
    webhooks.verify(kat_headers(), KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP - offset)


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_timestamp_outside_the_tolerance_fails(offset: int) -> None:
    # offset > 0: the message is older than now; < 0: it claims to come from the future.
    with pytest.raises(
        WebhookVerificationError, match=r"^webhook timestamp outside the tolerance$"
    ):
        webhooks.verify(kat_headers(), KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP + offset)


def test_wall_clock_is_the_default() -> None:
    secret = webhooks.new_webhook_secret()
    fresh = int(time.time())
    webhooks.verify(webhooks.signed_headers(secret, "m", fresh, b"{}"), b"{}", [secret])
    stale = webhooks.signed_headers(secret, "m", fresh - 301, b"{}")
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(stale, b"{}", [secret])


def test_rotation_old_and_new_secret_both_verify() -> None:
    old, new = webhooks.new_webhook_secret(), webhooks.new_webhook_secret()
    now = int(time.time())
    body = b'{"k": 1}'
    both = f"{webhooks.sign(new, 'm1', now, body)} {webhooks.sign(old, 'm1', now, body)}"
    headers = {"webhook-id": "m1", "webhook-timestamp": str(now), "webhook-signature": both}
    # The sender signs with both while the receiver has switched to either, or keeps both.
    for secrets in ([new], [old], [new, old], [old, new]):
        assert webhooks.verify(headers, body, secrets, now=now).id == "m1"
    # A sender still on the old secret alone verifies while the receiver keeps it.
    only_old = {**headers, "webhook-signature": webhooks.sign(old, "m1", now, body)}
    assert webhooks.verify(only_old, body, [new, old], now=now).id == "m1"
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(only_old, body, [new], now=now)


def test_several_entries_with_other_versions_and_junk() -> None:
    # As the reference implementation's multi-signature test: unknown versions are skipped.
    signature = " ".join(
        [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1a,abc",
            "garbage",
            "v1,not base64!",
            KAT_SIGNATURE,
        ]
    )
    message = webhooks.verify(kat_headers(signature), KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)
    assert message.id == KAT_ID


def test_header_names_are_case_insensitive() -> None:
    headers = {
        "Webhook-Id": KAT_ID,
        "WEBHOOK-TIMESTAMP": str(KAT_TIMESTAMP),
        "webhook-Signature": KAT_SIGNATURE,
    }
    assert webhooks.verify(headers, KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP).id == KAT_ID


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    headers = kat_headers()
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match=r"^missing webhook headers$"):
        webhooks.verify(headers, KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-timestamp", "1614265330.0"),
        ("webhook-timestamp", "-1614265330"),
        ("webhook-timestamp", "1e9"),
        ("webhook-timestamp", "١٦١٤٢٦٥٣٣٠"),  # Arabic-Indic digits: int() would take them
        ("webhook-id", "msg with spaces"),
        ("webhook-id", "x" * 257),
    ],
)
def test_malformed_headers(name: str, value: str) -> None:
    headers = kat_headers()
    headers[name] = value
    with pytest.raises(WebhookVerificationError, match=r"^malformed webhook headers$"):
        webhooks.verify(headers, KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)


def test_conflicting_duplicate_headers_are_malformed() -> None:
    headers = {**kat_headers(), "Webhook-Id": "another"}
    with pytest.raises(WebhookVerificationError, match=r"^malformed webhook headers$"):
        webhooks.verify(headers, KAT_BODY, [KAT_SECRET], now=KAT_TIMESTAMP)


def test_no_usable_secret_fails_without_revealing_anything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        webhooks.verify(kat_headers(), KAT_BODY, [], now=KAT_TIMESTAMP)
    with pytest.raises(WebhookVerificationError) as caught_bad:
        webhooks.verify(kat_headers(), KAT_BODY, ["whsec_!!!not-base64"], now=KAT_TIMESTAMP)
    for exc in (caught.value, caught_bad.value):
        text = f"{exc} {exc!r} {exc.args}"
        assert KAT_SIGNATURE.removeprefix("v1,") not in text
        assert "MfKQ9r8G" not in text
        assert "not-base64" not in text


def test_error_messages_never_echo_the_signature_or_secret() -> None:
    secret = webhooks.new_webhook_secret()
    for signature in (KAT_SIGNATURE, KAT_WRONG_SIGNATURE):
        with pytest.raises(WebhookVerificationError) as caught:
            webhooks.verify(kat_headers(signature), KAT_BODY, [secret], now=KAT_TIMESTAMP)
        text = f"{caught.value} {caught.value!r}"
        assert signature[3:] not in text
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text


def test_non_utf8_body_is_verified_as_bytes() -> None:
    secret = webhooks.new_webhook_secret()
    body = b"\xff\xfe\x00binary"
    headers = webhooks.signed_headers(secret, "m", 1_700_000_000, body)
    assert webhooks.verify(headers, body, [secret], now=1_700_000_000).id == "m"


_text = st.text(max_size=80)
_header_values = st.one_of(
    _text,
    st.sampled_from(["", " ", "v1,", "v1,=", ",", "v1,,", str(KAT_TIMESTAMP), KAT_SIGNATURE]),
    st.builds(lambda n: str(n), st.integers()),
    st.builds(lambda parts: " ".join(parts), st.lists(_text, max_size=5)),
)
_header_names = st.one_of(
    st.sampled_from(["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "webhook-signature "]),
    _text,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    headers=st.dictionaries(_header_names, _header_values, max_size=6),
    body=st.binary(max_size=64),
    secrets=st.lists(st.one_of(_text, st.just(KAT_SECRET)), max_size=3),
    now=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_fuzzed_headers_only_raise_verification_errors(
    headers: dict[str, str], body: bytes, secrets: list[str], now: float | None
) -> None:
    messages = {
        "missing webhook headers",
        "malformed webhook headers",
        "webhook timestamp outside the tolerance",
        "invalid webhook signature",
    }
    error: WebhookVerificationError | None = None
    try:
        webhooks.verify(headers, body, secrets, now=now)
    except WebhookVerificationError as exc:
        error = exc
    assert error is None or str(error) in messages


@settings(max_examples=200, deadline=None)
@given(
    msg_id=st.from_regex(r"[\x21-\x7e]{1,40}", fullmatch=True),
    body=st.binary(max_size=200),
    timestamp=st.integers(min_value=0, max_value=10**12),
)
def test_round_trip(msg_id: str, body: bytes, timestamp: int) -> None:
    secret = webhooks.new_webhook_secret()
    headers = webhooks.signed_headers(secret, msg_id, timestamp, body)
    assert webhooks.verify(headers, body, [secret], now=timestamp) == WebhookMessage(
        msg_id, timestamp
    )
