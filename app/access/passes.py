"""Passes: what a queue or a draw hands an admitted user, and what a purchase of a queue or
draw event must show (X-Seckill-Pass). Signed with their own secret
(SECKILL_PASS_SECRET), so checking one needs no lookup: the hot path verifies it in the
API process, before Redis, with one HMAC.

Format (ASCII, no separator inside a field but the user id's, which is base64url):
    p1.<event id>.<valid from ms>.<valid until ms>.<base64url(user id)>.<base64url(mac)>
mac = HMAC-SHA256(secret, "p1.<event id>.<valid from ms>.<valid until ms>.<b64 user id>").
"""

import base64
import binascii
import functools
import hmac
from dataclasses import dataclass
from enum import StrEnum

from app.auth import HmacSha256
from app.config import Settings

VERSION = "p1"
# Far longer than any pass this service writes; a longer header is refused unread.
MAX_PASS_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Pass:
    event_id: int
    user_id: str
    valid_from_ms: int
    valid_until_ms: int


class PassProblem(StrEnum):
    """Why a pass does not admit (the `detail` of 403 not_admitted)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    FORGED = "forged"  # the signature does not match
    OTHER_EVENT = "other_event"
    OTHER_USER = "other_user"
    NOT_YET = "not_yet"
    EXPIRED = "expired"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> bytes:
    return _keyed(secret).digest(signed.encode("ascii"))


@functools.lru_cache(maxsize=4)  # a process checks passes under one key (tests: a few)
def _keyed(secret: bytes) -> HmacSha256:
    return HmacSha256(secret)


def pass_secret(settings: Settings) -> bytes:
    """The key passes are signed and checked with (SECKILL_PASS_SECRET): what `issue`,
    `read` and `check` take as `secret`."""
    return settings.pass_secret.get_secret_value().encode("utf-8")


def issue(secret: bytes, admitted: Pass) -> str:
    signed = ".".join(
        (
            VERSION,
            str(admitted.event_id),
            str(admitted.valid_from_ms),
            str(admitted.valid_until_ms),
            _b64(admitted.user_id.encode("utf-8")),
        )
    )
    return f"{signed}.{_b64(_mac(secret, signed))}"


def read(secret: bytes, text: str) -> Pass | PassProblem:
    """The pass `text` carries if its signature is this service's, else why not (the
    window and the binding are the caller's to check: `check`)."""
    if len(text) > MAX_PASS_LENGTH or not text.isascii():
        return PassProblem.MALFORMED
    signed, _, mac_text = text.rpartition(".")
    parts = signed.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        return PassProblem.MALFORMED
    try:
        mac = _unb64(mac_text)
        user_id = _unb64(parts[4]).decode("utf-8")
        event_id, valid_from_ms, valid_until_ms = int(parts[1]), int(parts[2]), int(parts[3])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return PassProblem.MALFORMED
    if not hmac.compare_digest(mac, _mac(secret, signed)):
        return PassProblem.FORGED
    return Pass(event_id, user_id, valid_from_ms, valid_until_ms)


def check(
    secret: bytes,
    text: str | None,
    *,
    event_id: int,
    user_id: str,
    now_ms: int,
    leeway_ms: int = 0,
) -> PassProblem | None:
    """None if `text` admits `user_id` to `event_id` at `now_ms`, else why not."""
    if text is None or text == "":
        return PassProblem.MISSING
    found = read(secret, text)
    if isinstance(found, PassProblem):
        return found
    return check_binding(
        found, event_id=event_id, user_id=user_id, now_ms=now_ms, leeway_ms=leeway_ms
    )


def check_binding(
    found: Pass, *, event_id: int, user_id: str, now_ms: int, leeway_ms: int = 0
) -> PassProblem | None:
    """None if the (signature-checked) pass admits `user_id` to `event_id` at `now_ms`.
    `leeway_ms`: how far behind the clock the pass was issued on `now_ms` may be (a pass
    starts at its admission on Redis's clock; SECKILL_PASS_CLOCK_LEEWAY_MS). Only the
    start has it: a clock ahead ends a pass that much early, which harms no one."""
    if found.event_id != event_id:
        return PassProblem.OTHER_EVENT
    if found.user_id != user_id:
        return PassProblem.OTHER_USER
    if now_ms + leeway_ms < found.valid_from_ms:
        return PassProblem.NOT_YET
    if now_ms >= found.valid_until_ms:
        return PassProblem.EXPIRED
    return None


def admitted_event(
    secret: bytes, text: str, *, user_id: str, now_ms: int, leeway_ms: int = 0
) -> int | PassProblem:
    """The event `text` admits `user_id` to at `now_ms`, else why not. A purchase knows
    its item, not the item's event, before Redis: purchase.lua compares this id with the
    sale's event (a pass of another event is refused there)."""
    found = read(secret, text)
    if isinstance(found, PassProblem):
        return found
    problem = check_binding(
        found, event_id=found.event_id, user_id=user_id, now_ms=now_ms, leeway_ms=leeway_ms
    )
    return found.event_id if problem is None else problem
