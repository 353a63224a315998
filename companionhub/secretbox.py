"""Secrets kept in the database (back-end API keys), encrypted with a key derived from ``SECRET_KEY``.

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived by HKDF-SHA256 from the
site's secret and a fixed ``info`` string, so the encryption key is never the
secret itself and cannot be confused with Django's own signing keys.
``SECRET_KEY_FALLBACKS`` are tried for decryption, so rotating the secret the
Django way (new ``SECRET_KEY``, old one in the fallbacks) keeps every stored
key readable; ``reseal`` re-encrypts a value under the current secret.

Nothing here logs or repeats a plaintext: a value that cannot be decrypted
raises ``SecretUnreadable`` whose message names no secret.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Changing this string makes every stored secret unreadable: it is part of the key.
HKDF_INFO = b"companionhub.secretbox.v1"


class SecretUnreadable(Exception):
    """A stored secret was encrypted under a site secret no longer configured."""


@lru_cache(maxsize=8)
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _box() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(s) for s in secrets])


def seal(plaintext: str) -> str:
    """Encrypt ``plaintext`` under the current ``SECRET_KEY``; the empty string stays empty."""
    if not plaintext:
        return ""
    return _box().encrypt(plaintext.encode()).decode("ascii")


def unseal(token: str) -> str:
    """Decrypt a value from ``seal``, trying ``SECRET_KEY`` then each fallback."""
    if not token:
        return ""
    try:
        return _box().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        # ``from None``: the chained exception would add nothing but noise to a log.
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS."
        ) from None


def reseal(token: str) -> str:
    """The same secret encrypted under the current ``SECRET_KEY`` (after a rotation)."""
    if not token:
        return ""
    try:
        return _box().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS."
        ) from None
