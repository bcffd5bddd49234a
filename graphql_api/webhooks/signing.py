"""Standard Webhooks signatures (https://www.standardwebhooks.com/): what a receiver verifies.

Each delivery carries ``webhook-id`` (the message id, the same on every retry of it, so a
receiver can drop duplicates), ``webhook-timestamp`` (integer Unix seconds of this attempt)
and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the secret's bytes,
of ``{id}.{timestamp}.{body}``. The secret is shown to its creator once as ``whsec_`` and the
base64 of 32 random bytes, the form the Standard Webhooks libraries take.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
#: 256 bits: the HMAC-SHA256 key size.
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{message_id}.{timestamp}.{body}``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt of ``body``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
