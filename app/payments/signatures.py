"""Signed webhooks: the HMAC-SHA256 of the raw body in lowercase hex, in
`X-Seckill-Signature`. Payment notifications (which we receive) prefix it `sha256=`; the
reminders we post (shared/CONTRACT.md: "hex HMAC-SHA256 of the body") send the hex alone."""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Seckill-Signature"
SCHEME = "sha256="  # payment notifications
HEX_ONLY = ""  # reminders (the notification webhook)


def sign(secret: str, body: bytes, *, scheme: str = SCHEME) -> str:
    """The header value sent with `body` (by a gateway, or by us to the notify webhook)."""
    return scheme + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(secret: str, body: bytes, header: str | None, *, scheme: str = SCHEME) -> bool:
    if not header or not header.startswith(scheme):
        return False
    # Constant-time: the comparison must not tell an attacker how many characters matched.
    return hmac.compare_digest(sign(secret, body, scheme=scheme), header.strip().lower())
