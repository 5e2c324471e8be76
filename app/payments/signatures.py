"""Signed payment notifications: `X-Seckill-Signature: sha256=<hex>`, the HMAC-SHA256 of
the raw request body under SECKILL_PAYMENT_WEBHOOK_SECRET, in lowercase hex."""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Seckill-Signature"
SCHEME = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value a gateway sends with `body`."""
    return SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith(SCHEME):
        return False
    # Constant-time: the comparison must not tell an attacker how many characters matched.
    return hmac.compare_digest(sign(secret, body), header.strip().lower())
