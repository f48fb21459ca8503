"""Secrets the platform must be able to read back (connector secrets, upstream tokens) are
sealed with AES-256-GCM under a key from settings; the ciphertext is bound to its owner
(associated data) so a sealed value cannot be moved to another row."""

from __future__ import annotations

import base64
import binascii
import os

_NONCE_BYTES = 12
_VERSION = b"\x01"


class CryptoError(Exception):
    """A sealed value cannot be opened: wrong key, tampered data or wrong owner."""


class SecretBox:
    def __init__(self, key_b64: str) -> None:
        try:
            key = base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("the encryption key is not valid base64") from None
        if len(key) != 32:
            raise CryptoError("the encryption key must be 32 bytes (base64 encoded)")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, owner: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), owner.encode())

    def open(self, sealed: bytes, *, owner: str) -> str:
        from cryptography.exceptions import InvalidTag

        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise CryptoError("sealed value is malformed")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, owner.encode()).decode()
        except InvalidTag:
            raise CryptoError("sealed value cannot be opened with this key") from None


def new_key() -> str:
    """A fresh base64 key for SECRETS_ENCRYPTION_KEY."""
    return base64.b64encode(os.urandom(32)).decode()
